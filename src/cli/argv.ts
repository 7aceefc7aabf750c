/**
 * Reads coturn-style command lines against the option table: `--name=value`, `--name value`, short
 * aliases (`-p 3478`), `--no-flag`, repeatable options (`--user a:b --user c:d`) and `-c FILE`.
 * citty draws the help; this parser does the reading, because a relay must reject a mistyped flag
 * instead of ignoring it, and must keep every value of a repeated one.
 */
import { OPTIONS, isOptionName, type OptionName, type RawOptions } from "../config/options.ts";
import { ConfigError, mergeOption } from "../config/resolve.ts";

export interface ParsedArgv {
  raw: RawOptions;
  configFile?: string;
}

const BY_ALIAS = new Map<string, OptionName>(
  Object.entries(OPTIONS).flatMap(([name, spec]) => ("alias" in spec ? [[spec.alias, name as OptionName]] : [])),
);

export function parseArgv(argv: readonly string[]): ParsedArgv {
  const raw: RawOptions = {};
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
    } else if (arg.startsWith("-") && arg.length > 1) {
      const alias = arg.slice(1, 2);
      if (alias === "c") name = "config";
      else name = BY_ALIAS.get(alias) ?? `-${alias}`;
      if (arg.length > 2) inline = arg.slice(2).replace(/^=/, "");
    } else {
      throw new ConfigError(`unexpected argument '${arg}' (see --help)`);
    }
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next.length > 1 && !/^-\d/.test(next))) {
        throw new ConfigError(`option '${arg}' needs a value`);
      }
      i++;
      return next;
    };
    if (name === "config") {
      configFile = takeValue();
      continue;
    }
    if (name === "help" || name === "version") continue; // citty answers these
    if (!isOptionName(name) && name.startsWith("no-") && isOptionName(name.slice(3)) && OPTIONS[name.slice(3) as OptionName].kind === "boolean") {
      if (inline !== undefined) throw new ConfigError(`option '--${name}' takes no value`);
      mergeOption(raw, name.slice(3) as OptionName, false);
      continue;
    }
    if (!isOptionName(name)) throw new ConfigError(`unknown option '${arg.split("=")[0]}' (see --help)`);
    if (OPTIONS[name].kind === "boolean") {
      if (inline === undefined) mergeOption(raw, name, true);
      else if (/^(1|true|yes|on)$/i.test(inline)) mergeOption(raw, name, true);
      else if (/^(0|false|no|off)$/i.test(inline)) mergeOption(raw, name, false);
      else throw new ConfigError(`option '--${name}' is a flag; '${inline}' is not true or false`);
      continue;
    }
    mergeOption(raw, name, takeValue(), `--${name}`);
  }
  return configFile === undefined ? { raw } : { raw, configFile };
}
