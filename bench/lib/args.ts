/** A small `--key value` / `--flag` parser for the bench scripts; unknown options are an error. */
export type ArgSpec = Record<string, { default: string | number | boolean; help: string }>;
export type Args<S extends ArgSpec> = { [K in keyof S]: S[K]["default"] extends boolean ? boolean : S[K]["default"] extends number ? number : string };

export class UsageError extends Error {}

export function parseArgs<S extends ArgSpec>(argv: string[], spec: S): Args<S> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(spec)) out[k] = v.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument ${a}`);
    let key = a.slice(2);
    let value: string | undefined;
    const eq = key.indexOf("=");
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    const s = spec[key];
    if (!s) throw new UsageError(`unknown option --${key}`);
    if (typeof s.default === "boolean") {
      out[key] = value === undefined ? true : value !== "false" && value !== "0";
      continue;
    }
    if (value === undefined) value = argv[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    if (typeof s.default === "number") {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`--${key}: not a number: ${value}`);
      out[key] = n;
    } else out[key] = value;
  }
  return out as Args<S>;
}

export function describeArgs(spec: ArgSpec): string {
  return Object.entries(spec)
    .map(([k, v]) => `    --${k}${typeof v.default === "boolean" ? "" : ` <${typeof v.default}>`}  ${v.help} (default ${JSON.stringify(v.default)})`)
    .join("\n");
}

/** Comma-separated numbers ("1,100"). */
export function numberList(text: string): number[] {
  return text.split(",").filter(Boolean).map((t) => {
    const n = Number(t);
    if (!Number.isFinite(n)) throw new UsageError(`not a number: ${t}`);
    return n;
  });
}

/** Space-separated words (extra relay options given as one argument, "--no-udp-gso --no-udp-gro"). */
export function wordList(text: string): string[] {
  return text.split(" ").filter(Boolean);
}
