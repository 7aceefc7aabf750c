/** Logging options: file lines in text or JSON, --no-stdout-log, SIGHUP-style reopen; option checks. */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogging } from "../../src/cli/logging.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";
import { parseArgv } from "../../src/cli/argv.ts";
import { parseTurnserverConf } from "../../src/config/turnserver-conf.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("createLogging", () => {
  test("JSON to a file: one object per line with time, level, message", () => {
    const file = join(dir, "a.log");
    const { logger, close } = createLogging({ file, stdout: false, format: "json" }, false);
    expect(logger.options.reporters.length).toBe(1); // the file only: --no-stdout-log
    logger.info("hello", 42);
    logger.warn("careful");
    logger.error("broken");
    logger.debug("not at level 3");
    close();
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.level, l.message])).toEqual([["info", "hello 42"], ["warn", "careful"], ["error", "broken"]]);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(["time", "level", "message"]);
      expect(new Date(l.time).toISOString()).toBe(l.time);
    }
  });

  test("text to a file, appended, and to stdout too; verbose adds debug", () => {
    const file = join(dir, "b.log");
    const first = createLogging({ file, stdout: true, format: "text" }, true);
    expect(first.logger.options.reporters.length).toBe(2);
    first.logger.debug("one");
    first.close();
    const second = createLogging({ file, stdout: false, format: "text" }, false);
    second.logger.info("two");
    second.close();
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z debug: one$/);
    expect(lines[1]).toMatch(/Z info: two$/);
  });

  test("reopen() starts a new file after the old one was moved (logrotate, SIGHUP)", () => {
    const file = join(dir, "c.log");
    const { logger, reopen, close } = createLogging({ file, stdout: false, format: "text" }, false);
    logger.info("before");
    renameSync(file, `${file}.1`);
    reopen();
    logger.info("after");
    close();
    expect(readFileSync(`${file}.1`, "utf8")).toContain("before");
    expect(readFileSync(file, "utf8")).toContain("after");
    expect(readFileSync(file, "utf8")).not.toContain("before");
  });

  test("a log file that cannot be opened is an error naming it", () => {
    expect(() => createLogging({ file: join(dir, "no/such/dir.log"), stdout: true, format: "text" }, false)).toThrow(/cannot open log file .*dir\.log: ENOENT/);
    expect(existsSync(join(dir, "no"))).toBe(false);
  });
});

describe("operator options (command line and turnserver.conf)", () => {
  test("defaults: no metrics, stdout text log, no pidfile", () => {
    const c = resolveConfig({});
    expect(c.prometheus).toBeUndefined();
    expect(c.log).toEqual({ stdout: true, format: "text" });
    expect(c.pidfile).toBeUndefined();
  });

  test("--prometheus takes coturn's port 9641 and path /metrics", () => {
    expect(resolveConfig(parseArgv(["--prometheus"]).raw).prometheus).toEqual({ address: "0.0.0.0", port: 9641, path: "/metrics" });
    const c = resolveConfig(parseArgv(["--prometheus", "--prometheus-port", "9100", "--prometheus-address", "::1", "--prometheus-path=/turn"]).raw);
    expect(c.prometheus).toEqual({ address: "::1", port: 9100, path: "/turn" });
    expect(() => resolveConfig(parseArgv(["--prometheus", "--prometheus-address", "nowhere"]).raw)).toThrow(ConfigError);
    expect(() => resolveConfig(parseArgv(["--prometheus", "--prometheus-path", "metrics"]).raw)).toThrow("must start with '/'");
  });

  test("logging flags as coturn spells them, in a conf file too", () => {
    expect(resolveConfig(parseArgv(["-l", "/var/log/bunturn.log", "--no-stdout-log", "--simple-log"]).raw).log).toEqual({ file: "/var/log/bunturn.log", stdout: false, format: "text" });
    expect(resolveConfig(parseArgv(["--log-file", "stdout", "--no-stdout-log"]).raw).log).toEqual({ stdout: true, format: "text" });
    expect(resolveConfig(parseArgv(["--log-file=-", "--log-format", "json"]).raw).log).toEqual({ stdout: true, format: "json" });
    expect(() => resolveConfig(parseArgv(["--log-format", "xml"]).raw)).toThrow("--log-format: expected text or json");
    // coturn's `log-file syslog` is --syslog (test/cli/syslog.test.ts).
    expect(resolveConfig(parseArgv(["--log-file", "syslog"]).raw).log).toEqual({ stdout: true, format: "text", syslog: { socket: "/dev/log", facility: 1 } });
    const conf = parseTurnserverConf("log-file=/tmp/t.log\nno-stdout-log\nsimple-log\npidfile=/run/bunturn.pid\nprometheus\nuserdb=/var/lib/turn/turndb\n");
    const c = resolveConfig(conf);
    expect(c.log).toEqual({ file: "/tmp/t.log", stdout: false, format: "text" });
    expect(c.pidfile).toBe("/run/bunturn.pid");
    expect(c.prometheus?.port).toBe(9641);
    expect(c.auth).toEqual({ kind: "long-term", users: [], userdb: "/var/lib/turn/turndb" });
  });

  test("-b/--userdb replaces the made-up user; --user entries stay alongside", () => {
    const c = resolveConfig(parseArgv(["-b", "/tmp/x.db", "--user", "a:b"]).raw);
    expect(c.auth).toEqual({ kind: "long-term", users: [["a", "b"]], userdb: "/tmp/x.db" });
    expect(c.generatedUser).toBeUndefined();
  });
});
