#!/usr/bin/env bun
/** bunturn's command line: coturn's flags, one clear line and exit 1 on any mistake. */
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { defineCommand, runMain, type ArgsDef } from "citty";
import { createConsola } from "consola";
import { OPTIONS } from "../config/options.ts";
import { ConfigError, mergeRaw, resolveConfig, type RelayConfig } from "../config/resolve.ts";
import { parseTurnserverConf } from "../config/turnserver-conf.ts";
import { RelayServer, StartupError, type RelayHooks } from "../engine/relay-server.ts";
import { parseArgv } from "./argv.ts";
import { adminCommand } from "./admin.ts";
import { createLogging, type Logging } from "./logging.ts";
import { UserDb } from "../userdb/sqlite.ts";
import { UserDbMirror } from "../userdb/mirror.ts";
import { sanitized } from "../userdb/connection.ts";
import { VERSION } from "../version.ts";
import { Drain } from "./drain.ts";
import { describeAlternates } from "../config/alternates.ts";


function helpArgs(): ArgsDef {
  const args: ArgsDef = {
    config: { type: "string", alias: "c", description: "turnserver.conf-style configuration file" },
  };
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const alias = "alias" in spec ? spec.alias : undefined;
    const def = "default" in spec ? ` (default: ${spec.default})` : "";
    args[name] = {
      type: spec.kind === "boolean" ? "boolean" : "string",
      description: spec.description + (spec.kind === "list" && !spec.description.includes("repeatable") ? " [repeatable]" : "") + def,
      ...(alias ? { alias } : {}),
    };
  }
  return args;
}

export function loadConfig(argv: readonly string[]): RelayConfig {
  const parsed = parseArgv(argv);
  let raw = parsed.raw;
  const notes: string[] = [];
  if (parsed.configFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(parsed.configFile, "utf8");
    } catch (error) {
      throw new ConfigError(`cannot read config file ${parsed.configFile}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    raw = mergeRaw(parseTurnserverConf(text, parsed.configFile, notes), raw);
  }
  const config = resolveConfig(raw);
  config.notes.push(...notes, ...parsed.notes);
  return config;
}

/** How often a network user database (--psql-userdb, --mysql-userdb) is read again. */
const USERDB_POLL_MS = 2000;

/** Writes `pid\n`; the caller removes it at a clean stop. */
function writePidfile(path: string): void {
  try {
    writeFileSync(path, `${process.pid}\n`);
  } catch (error) {
    throw new StartupError(`cannot write pidfile ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function removePidfile(path: string | undefined): void {
  if (path === undefined) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Creates the user database (coturn does too) and counts the realm's users and secrets for the start-up line. */
function prepareUserdb(path: string, realm: string): { users: number; secrets: number } {
  try {
    const db = UserDb.open(path, { create: true });
    const count = { users: db.listUsers(realm).length, secrets: db.listSecrets(realm).length };
    db.close();
    return count;
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
}

/**
 * Runs the relay until SIGTERM/SIGINT. `hooks.engineEntry` is for tests only (an engine that dies on
 * purpose); `bunturn` itself never passes it.
 */
export async function startRelay(argv: readonly string[], hooks: Pick<RelayHooks, "engineEntry"> = {}): Promise<void> {
  let config: RelayConfig;
  // Until the options are read, errors go to standard output the usual way.
  let logger = createConsola({ level: argv.includes("-v") || argv.includes("--verbose") ? 4 : 3 });
  let logging: Logging | undefined;
  let pidfile: string | undefined;
  let mirror: UserDbMirror | undefined;
  // Installed first: SIGHUP, SIGUSR1 and SIGUSR2 kill a process that has no handler (systemctl reload
  // during start-up, a stray kill -USR1). Until the relay is up, SIGHUP has nothing to reload.
  let onReload = () => logger.info("SIGHUP: nothing to reload yet (starting)");
  process.on("SIGHUP", () => onReload());
  let onDrain = () => logger.info("SIGUSR1: not draining yet (starting)");
  process.on("SIGUSR1", () => onDrain());
  let onCertificateReload = () => logger.info("SIGUSR2: no certificate to reload yet (starting)");
  process.on("SIGUSR2", () => onCertificateReload());
  // What every exit releases once the relay's engines are stopped (or were never started).
  const release = async () => {
    await mirror?.stop();
    removePidfile(pidfile);
    logging?.close();
  };
  // SIGTERM/SIGINT too: without a handler the kernel ends the process at once (exit 143), even in the
  // moment between "listening on" and the line that installs the real stop. Until then, stop = exit.
  let onStop = (signal: string): void => {
    logger.info(`${signal}: stopping (during start-up)`);
    onStop = () => {}; // a second signal while releasing changes nothing
    void release().then(() => process.exit(0));
  };
  process.on("SIGINT", () => onStop("SIGINT"));
  process.on("SIGTERM", () => onStop("SIGTERM"));
  try {
    config = loadConfig(argv);
    try {
      logging = createLogging(config.log, config.verbose);
    } catch (error) {
      throw new StartupError((error as Error).message);
    }
    logger = logging.logger;
    let inDb = { users: 0, secrets: 0 };
    let dbLabel = config.auth.kind !== "none" ? config.auth.userdb : undefined;
    if (config.auth.kind !== "none" && config.auth.networkUserdb !== undefined) {
      // The engines read a local copy the main thread keeps fresh: they never wait on the network.
      mirror = await UserDbMirror.start(config.auth.networkUserdb, config.realm, logger, { intervalMs: USERDB_POLL_MS });
      config.auth.userdb = mirror.path;
      inDb = mirror.counts();
      dbLabel = sanitized(config.auth.networkUserdb);
    } else if (config.auth.kind !== "none" && config.auth.userdb !== undefined) inDb = prepareUserdb(config.auth.userdb, config.realm);
    if (config.pidfile !== undefined) {
      writePidfile(config.pidfile);
      pidfile = config.pidfile;
    }
    let stopping = false;
    // An engine that dies leaves its sockets in the SO_REUSEPORT groups and its sessions orphaned: one
    // line, then everything closed and exit 1, so the service manager (Restart=on-failure) restarts us.
    const onEngineDeath = (message: string) => {
      if (stopping) return;
      stopping = true;
      logger.error(`${message}; exiting so that the service manager restarts the relay`);
      void server.stop().then(release).then(() => process.exit(1));
    };
    const server = await RelayServer.start(config, logger, { ...hooks, onEngineDeath });
    if (mirror !== undefined) server.addMetrics(() => mirror!.metrics());
    const auth = config.auth.kind === "rest"
      ? `REST API shared secret(s), ${config.auth.secrets.length} configured` +
        (dbLabel !== undefined ? ` + user database ${dbLabel} (${inDb.secrets} in realm ${config.realm} now)` : "")
      : config.auth.kind === "none"
        ? "none"
        : `long-term credentials, ${config.auth.users.length} user(s)` +
          (dbLabel !== undefined ? ` + user database ${dbLabel} (${inDb.users} in realm ${config.realm} now)` : "");
    logger.info(
      `bunturn ${VERSION} listening on ${server.listeners.join(", ")}; relay ${config.relayIps.join(", ")} ports ${config.minPort}-${config.maxPort}; ` +
        `${config.relayThreads} engine(s); realm ${config.realm}; auth: ${auth}; recvmmsg ${config.udpRecvmmsg ? "on" : "off"}, sendmmsg ${config.udpSendmmsg ? "on" : "off"}`,
    );
    for (const note of config.notes) logger.debug(note);
    if (config.generatedUser) {
      logger.warn(`no credentials configured: created user '${config.generatedUser.name}' with password '${config.generatedUser.password}' for this run (use --user NAME:PASSWORD)`);
    }
    if (config.auth.kind === "none") logger.warn("--no-auth: anyone can allocate relays on this server");
    if (config.auth.kind === "none" && loadedUserdb(argv)) logger.warn("--userdb is not read with --no-auth");
    if (server.metricsUrl !== undefined) logger.info(`prometheus metrics on ${server.metricsUrl}`);
    if (config.controlSocket !== undefined) logger.info(`control socket ${config.controlSocket} ('bunturn admin sessions -c ${config.controlSocket}')`);
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(`${signal}: stopping`);
      drain?.cancel();
      void server.stop().then(release).then(() => process.exit(0));
    };
    onStop = stop;
    onReload = () => reload(logger, logging, config.log.file);
    // coturn's SIGUSR1: drain, then stop with exit 0 once --drain-min-allocations is reached.
    const drain = new Drain(server, config.drainMinAllocations, logger, (reason) => stop(reason));
    onDrain = () => drain.begin("SIGUSR1");
    // coturn's SIGUSR2: the TLS certificate and key are read again (they are also watched for changes).
    onCertificateReload = () => server.reloadCertificate("SIGUSR2");
    const redirects = describeAlternates(config.alternates);
    if (redirects !== undefined) logger.info(redirects);
  } catch (error) {
    removePidfile(pidfile);
    await mirror?.stop();
    if (error instanceof ConfigError || error instanceof StartupError) {
      logger.error(error.message);
      logging?.close();
      process.exit(1);
    }
    throw error;
  }
}

/**
 * SIGHUP: reloads what can change without dropping a session. Today that is the log file (reopened, as
 * coturn does, after logrotate moved it); the user database is read on every login anyway. Everything
 * else (ports, addresses, credentials on the command line) needs a restart.
 */
function reload(logger: { info(m: string): void; warn(m: string): void }, logging: Logging | undefined, file: string | undefined): void {
  if (file === undefined) {
    logger.info("SIGHUP: no log file to reopen; nothing else to reload (the user database, users and secrets, is read on every login)");
    return;
  }
  try {
    logging?.reopen();
    logger.info(`SIGHUP: log file ${file} reopened`);
  } catch (error) {
    // The old file stays open: a log file that cannot be reopened must not stop the relay.
    logger.warn(`SIGHUP: ${(error as Error).message}; still writing to the old file`);
  }
}

/** Whether --userdb/-b was given at all (it is dropped from the config unless long-term auth uses it). */
function loadedUserdb(argv: readonly string[]): boolean {
  return argv.some((a) => a === "-b" || a.startsWith("--userdb") || /^-b./.test(a));
}

const main = defineCommand({
  meta: { name: "bunturn", version: VERSION, description: "TURN/STUN relay server (RFC 8489, RFC 8656), coturn-compatible flags" },
  args: helpArgs(),
  subCommands: { admin: adminCommand },
  // citty runs this after a subcommand too: only flags (no positional word) mean "run the server".
  run: ({ rawArgs, args }) => (args._.length > 0 ? undefined : startRelay(rawArgs)),
});

if (import.meta.main) await runMain(main);
