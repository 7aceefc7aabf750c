/**
 * Raw options, as the command line and turnserver.conf give them (before resolve.ts checks them): how
 * values accumulate, how two sources merge, how one is read with its default, and the checks of a
 * single value that every resolver uses.
 */
import { OPTIONS, type OptionName, type OptionSpec, type RawOptions } from "./options.ts";
import { parseIp } from "../net/endpoint.ts";
import { ConfigError } from "./config-error.ts";

/** Adds one value to raw options: repeatable options accumulate, others keep the last value. */
export function mergeOption(raw: RawOptions, name: OptionName, value: string | number | boolean, where?: string): void {
  const spec: OptionSpec = OPTIONS[name];
  if (spec.kind === "list") {
    const list = (raw[name] as string[] | undefined) ?? [];
    const values = spec.verbatim === true ? [String(value)] : String(value).split(",").map((s) => s.trim()).filter(Boolean);
    for (const v of values) list.push(v);
    raw[name] = list;
    return;
  }
  if (spec.kind === "number") {
    const n = typeof value === "number" ? value : Number(value);
    if (!Number.isInteger(n)) throw new ConfigError(`${where ? where + ": " : ""}--${name} needs a whole number, got '${value}'`);
    raw[name] = n;
    return;
  }
  raw[name] = value;
}

/** Later sources win; lists from both are kept (a conf file's users plus the command line's). */
export function mergeRaw(base: RawOptions, over: RawOptions): RawOptions {
  const out: RawOptions = { ...base };
  for (const [k, v] of Object.entries(over) as Array<[OptionName, RawOptions[OptionName]]>) {
    if (v === undefined) continue;
    // A value given twice (the file's listening-ip repeated on the command line) is one value.
    if (OPTIONS[k].kind === "list") out[k] = [...new Set([...((out[k] as string[]) ?? []), ...(v as string[])])];
    else out[k] = v;
  }
  return out;
}

/** The value given for `name`, or its default from the option table. */
export function get<T>(raw: RawOptions, name: OptionName): T {
  return (raw[name] ?? (OPTIONS[name] as { default?: unknown }).default) as T;
}

export function checkIp(text: string, option: string): string {
  if (!parseIp(text)) throw new ConfigError(`--${option}: '${text}' is not an IP address`);
  return text;
}

export function checkPort(n: number, option: string): number {
  if (!(n >= 1 && n <= 65535)) throw new ConfigError(`--${option}: ${n} is not a port (1-65535)`);
  return n;
}

export function checkPositive(n: number, option: string): number {
  if (!(n > 0)) throw new ConfigError(`--${option}: must be above 0, got ${n}`);
  return n;
}

/** Limits where 0 means unlimited (coturn's quotas). */
export function checkNotNegative(n: number, option: string): number {
  if (!(n >= 0)) throw new ConfigError(`--${option}: must be 0 (unlimited) or more, got ${n}`);
  return n;
}
