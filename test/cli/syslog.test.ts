/** --syslog: log lines reach the system logger's Unix datagram socket (here one of the test's own). */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindUnixDatagram, libc } from "../../ffi/index.ts";
import { createLogging } from "../../src/cli/logging.ts";
import { parseArgv } from "../../src/cli/argv.ts";
import { resolveConfig } from "../../src/config/resolve.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-syslog-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every datagram waiting on `fd` (non-blocking), as text. */
function drain(fd: number): string[] {
  const buf = new Uint8Array(4096);
  const out: string[] = [];
  for (let n = libc.read(fd, buf, buf.length); n >= 0; n = libc.read(fd, buf, buf.length)) out.push(new TextDecoder().decode(buf.subarray(0, n)));
  return out;
}

test("RFC 3164 datagrams with the facility and each line's severity; standard output off with --no-stdout-log", () => {
  const path = join(dir, "log.sock");
  const fd = bindUnixDatagram(path);
  try {
    const config = resolveConfig(parseArgv(["-u", "a:b", "--syslog", "--syslog-facility", "local4", "--syslog-socket", path, "--no-stdout-log"]).raw);
    expect(config.log.stdout).toBe(false);
    const logging = createLogging(config.log, true);
    logging.logger.info("relay up");
    logging.logger.warn("quota near");
    logging.logger.debug("detail");
    logging.close();
    const lines = drain(fd);
    // local4 = 20: info 20*8+6, warning 20*8+4, debug 20*8+7.
    expect(lines.map((l) => l.replace(/^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d /, "$1"))).toEqual([
      `<166>bunturn[${process.pid}]: relay up`,
      `<164>bunturn[${process.pid}]: quota near`,
      `<167>bunturn[${process.pid}]: detail`,
    ]);
  } finally {
    libc.close(fd);
  }
});

test("a logger that is not there yet: one warning on standard output, the lines after it arrive once it is", () => {
  const path = join(dir, "late.sock");
  const config = resolveConfig(parseArgv(["-u", "a:b", "--syslog", "--syslog-socket", path]).raw);
  const logging = createLogging(config.log, false);
  logging.logger.info("lost");
  const fd = bindUnixDatagram(path);
  try {
    logging.logger.info("found");
    expect(drain(fd).map((l) => l.replace(/^<\d+>.*?: /, ""))).toEqual(["found"]);
    expect(drain(fd)).toEqual([]);
  } finally {
    logging.close();
    libc.close(fd);
  }
});
