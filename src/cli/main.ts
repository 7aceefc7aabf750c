#!/usr/bin/env bun
/** bunturn's command line: coturn's flags, one clear line and exit 1 on any mistake. */
import { readFileSync } from "node:fs";
import { defineCommand, runMain, type ArgsDef } from "citty";
import { createConsola } from "consola";
import { OPTIONS } from "../config/options.ts";
import { ConfigError, mergeRaw, resolveConfig, type RelayConfig } from "../config/resolve.ts";
import { parseTurnserverConf } from "../config/turnserver-conf.ts";
import { RelayServer, StartupError } from "../engine/relay-server.ts";
import { parseArgv } from "./argv.ts";

const VERSION = "0.1.0";

function helpArgs(): ArgsDef {
  const args: ArgsDef = {
    config: { type: "string", alias: "c", description: "turnserver.conf-style configuration file" },
  };
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const alias = "alias" in spec ? spec.alias : undefined;
    const def = "default" in spec ? ` (default: ${spec.default})` : "";
    args[name] = {
      type: spec.kind === "boolean" ? "boolean" : "string",
      description: spec.description + (spec.kind === "list" ? " [repeatable]" : "") + def,
      ...(alias ? { alias } : {}),
    };
  }
  return args;
}

export function loadConfig(argv: readonly string[]): RelayConfig {
  const parsed = parseArgv(argv);
  let raw = parsed.raw;
  if (parsed.configFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(parsed.configFile, "utf8");
    } catch (error) {
      throw new ConfigError(`cannot read config file ${parsed.configFile}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    raw = mergeRaw(parseTurnserverConf(text, parsed.configFile), raw);
  }
  return resolveConfig(raw);
}

async function startRelay(argv: readonly string[]): Promise<void> {
  let config: RelayConfig;
  const logger = createConsola({ level: argv.includes("-v") || argv.includes("--verbose") ? 4 : 3 });
  try {
    config = loadConfig(argv);
    const server = await RelayServer.start(config, logger);
    const auth = config.auth.kind === "rest" ? "REST API shared secret" : config.auth.kind === "none" ? "none" : `long-term credentials, ${config.auth.users.length} user(s)`;
    logger.info(
      `bunturn ${VERSION} listening on ${server.listeners.join(", ")} (UDP); relay ${config.relayIps.join(", ")} ports ${config.minPort}-${config.maxPort}; ` +
        `${config.relayThreads} engine(s); realm ${config.realm}; auth: ${auth}; recvmmsg ${config.udpRecvmmsg ? "on" : "off"}, sendmmsg ${config.udpSendmmsg ? "on" : "off"}`,
    );
    if (config.generatedUser) {
      logger.warn(`no credentials configured: created user '${config.generatedUser.name}' with password '${config.generatedUser.password}' for this run (use --user NAME:PASSWORD)`);
    }
    if (config.auth.kind === "none") logger.warn("--no-auth: anyone can allocate relays on this server");
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(`${signal}: stopping`);
      server.stop().then(() => process.exit(0));
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StartupError) {
      logger.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

const main = defineCommand({
  meta: { name: "bunturn", version: VERSION, description: "TURN/STUN relay server (RFC 8489, RFC 8656), coturn-compatible flags" },
  args: helpArgs(),
  run: ({ rawArgs }) => startRelay(rawArgs),
});

if (import.meta.main) await runMain(main);
