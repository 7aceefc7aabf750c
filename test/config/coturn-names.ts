/** coturn's option names (test/fixtures/coturn/option-names.txt): long name (or "-"), short alias, argument. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CoturnOption { name: string; short: string | null; argument: "none" | "optional" | "required" }

export function coturnOptionNames(): CoturnOption[] {
  const text = readFileSync(join(import.meta.dir, "../fixtures/coturn/option-names.txt"), "utf8");
  return text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => {
    const [name, short, argument] = l.split("\t") as [string, string, CoturnOption["argument"]];
    return { name, short: short === "-" ? null : short, argument };
  });
}
