/**
 * Reads coturn-style command lines against the option table: `--name=value`, `--name value`, short
 * aliases (`-p 3478`), `--no-flag`, repeatable options (`--user a:b --user c:d`) and `-c FILE`.
 * citty draws the help; this parser does the reading, because a relay must reject a mistyped flag
 * instead of ignoring it, and must keep every value of a repeated one. coturn's other names
 * (coturn-options.ts) are read too: accepted ones are noted, refused ones stop the start with the reason.
 */
import { OPTIONS, isOptionName, type OptionName, type RawOptions } from "../config/options.ts";
import { SHORT_NAMES, classifyName } from "../config/coturn-options.ts";
import { ConfigError, mergeOption } from "../config/resolve.ts";

export interface ParsedArgv {
  raw: RawOptions;
  configFile?: string;
  /** One line per accepted coturn key that changes nothing (logged at -v). */
  notes: string[];
}

const TRUE = /^(1|true|yes|on|t)$/i;
const FALSE = /^(0|false|no|off|f)$/i;

export function parseArgv(argv: readonly string[]): ParsedArgv {
  const raw: RawOptions = {};
  const notes: string[] = [];
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
      else name = SHORT_NAMES.get(alias) ?? `-${alias}`;
      if (arg.length > 2) inline = arg.slice(2).replace(/^=/, "");
    } else {
      throw new ConfigError(`unexpected argument '${arg}' (see --help)`);
    }
    const isValue = (next: string | undefined) => next !== undefined && !(next.startsWith("-") && next.length > 1 && !/^-\d/.test(next));
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (!isValue(next)) throw new ConfigError(`option '${arg}' needs a value`);
      i++;
      return next!;
    };
    if (name === "config") {
      configFile = takeValue();
      continue;
    }
    if (name === "help" || name === "-h") continue; // citty answers it (and --version)
    // --no-FLAG turns FLAG off, unless coturn has the name itself (--no-rfc5780 is a no-op there too).
    if (classifyName(name).status === "unknown" && name.startsWith("no-") && isOptionName(name.slice(3)) && OPTIONS[name.slice(3) as OptionName].kind === "boolean") {
      if (inline !== undefined) throw new ConfigError(`option '--${name}' takes no value`);
      mergeOption(raw, name.slice(3) as OptionName, false);
      continue;
    }
    const known = classifyName(name);
    if (known.status === "unknown") throw new ConfigError(`unknown option '${arg.split("=")[0]}' (see --help)`);
    if (known.status !== "option") {
      // coturn reads an optional argument only after '=', so '--no-cli 1' is not a value of no-cli.
      if (known.argument === "required") takeValue();
      const shown = name.startsWith("-") ? name : `--${name}`;
      if (known.status === "refused") throw new ConfigError(`${shown}: not supported: ${known.why}`);
      if (known.argument !== "required" && inline !== undefined && FALSE.test(inline)) {
        throw new ConfigError(`${shown}=${inline}: not supported: bunturn always behaves as ${shown} (${known.why})`);
      }
      notes.push(`${shown}: accepted, nothing to do: ${known.why}`);
      continue;
    }
    name = known.option;
    const spec: { kind: string; bare?: string | number } = OPTIONS[known.option];
    if (spec.kind === "boolean") {
      if (inline === undefined) mergeOption(raw, known.option, true);
      else if (TRUE.test(inline)) mergeOption(raw, known.option, true);
      else if (FALSE.test(inline)) mergeOption(raw, known.option, false);
      else throw new ConfigError(`option '--${name}' is a flag; '${inline}' is not true or false`);
      continue;
    }
    if (spec.bare !== undefined && inline === undefined && !isValue(argv[i + 1])) {
      mergeOption(raw, known.option, spec.bare, `--${name}`);
      continue;
    }
    mergeOption(raw, known.option, takeValue(), `--${name}`);
  }
  return configFile === undefined ? { raw, notes } : { raw, configFile, notes };
}
