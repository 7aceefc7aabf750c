/**
 * turnserver.conf syntax (the subset bunturn supports): one option per line, `name=value`, `name value`
 * or a bare `name` for a flag, `#` comments, optional leading `--`. Unknown names are an error that
 * names the file and line, never silently ignored.
 */
import { OPTIONS, isOptionName, type RawOptions } from "./options.ts";
import { ConfigError, mergeOption } from "./resolve.ts";

export function parseTurnserverConf(text: string, fileName = "config"): RawOptions {
  const raw: RawOptions = {};
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/#.*$/, "").trim();
    if (!line) continue;
    const m = /^(?:--)?([A-Za-z0-9-]+)\s*(?:=\s*|\s+)?(.*)$/.exec(line);
    const name = m?.[1] ?? "";
    let value = (m?.[2] ?? "").trim();
    if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    const where = `${fileName}:${n + 1}`;
    if (!isOptionName(name)) throw new ConfigError(`${where}: unknown option '${name}'`);
    const spec = OPTIONS[name];
    if (spec.kind === "boolean") {
      if (value === "" || /^(1|true|yes|on)$/i.test(value)) mergeOption(raw, name, true);
      else if (/^(0|false|no|off)$/i.test(value)) mergeOption(raw, name, false);
      else throw new ConfigError(`${where}: '${name}' is a flag; '${value}' is not true or false`);
      continue;
    }
    if (value === "") throw new ConfigError(`${where}: '${name}' needs a value`);
    mergeOption(raw, name, value, where);
  }
  return raw;
}
