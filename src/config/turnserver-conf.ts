/**
 * turnserver.conf syntax: one option per line, `name=value`, `name value` or a bare `name` for a flag,
 * `#` comments, optional leading `--`, values in quotes. Every coturn key is known (coturn-options.ts):
 * bunturn's own options are read, accepted coturn keys are noted (logged at -v), refused ones stop the
 * start with the file, line and reason. A name coturn does not have either is an error, never ignored.
 */
import { OPTIONS, type RawOptions } from "./options.ts";
import { classifyName } from "./coturn-options.ts";
import { ConfigError, mergeOption } from "./resolve.ts";

const FALSE = /^(0|false|no|off|f)$/i;

export function parseTurnserverConf(text: string, fileName = "config", notes: string[] = []): RawOptions {
  const raw: RawOptions = {};
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    // A comment is a line starting with '#' or ' #...' after a value (`user-quota=12 # per user`); a '#'
    // inside a value stays (coturn keeps it: `static-auth-secret=ab#cd` is that secret).
    const line = lines[n]!.replace(/(^|\s)#.*$/, "").trim();
    if (!line) continue;
    const m = /^(?:--)?([A-Za-z0-9_-]+)\s*(?:=\s*|\s+)?(.*)$/.exec(line);
    const name = m?.[1] ?? "";
    let value = (m?.[2] ?? "").trim();
    if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    const where = `${fileName}:${n + 1}`;
    const known = classifyName(name);
    if (known.status === "unknown") throw new ConfigError(`${where}: unknown option '${name}'`);
    if (known.status !== "option") {
      if (known.status === "refused") throw new ConfigError(`${where}: '${name}' is not supported: ${known.why}`);
      if (known.argument !== "required" && FALSE.test(value)) {
        throw new ConfigError(`${where}: '${name}=${value}' is not supported: bunturn always behaves as '${name}' (${known.why})`);
      }
      notes.push(`${where}: '${name}' accepted, nothing to do: ${known.why}`);
      continue;
    }
    const option = known.option;
    const spec: { kind: string; bare?: string | number } = OPTIONS[option];
    if (spec.kind === "boolean") {
      if (value === "" || /^(1|true|yes|on|t)$/i.test(value)) mergeOption(raw, option, true);
      else if (FALSE.test(value)) mergeOption(raw, option, false);
      else throw new ConfigError(`${where}: '${name}' is a flag; '${value}' is not true or false`);
      continue;
    }
    if (value === "" && spec.bare !== undefined) value = String(spec.bare);
    if (value === "") throw new ConfigError(`${where}: '${name}' needs a value`);
    mergeOption(raw, option, value, where);
  }
  return raw;
}
