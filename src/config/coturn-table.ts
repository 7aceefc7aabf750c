/**
 * The table of docs/migrating-from-coturn.md: for each of coturn's option names, what bunturn does with
 * it, drawn from the option tables themselves (options.ts, coturn-options.ts) so that the document
 * cannot drift from the code (test/config/migrating-doc.test.ts compares the two).
 */
import { OPTIONS } from "./options.ts";
import { classifyName } from "./coturn-options.ts";

export interface CoturnOptionName {
  /** The long name, or null for a short option coturn has no long name for (-c, -n, -h). */
  name: string | null;
  short: string | null;
}

const cell = (text: string) => text.replace(/\|/g, "\\|");

function behaviour(name: string, short: string | null): string {
  if (short === "-c") return "implemented: the configuration file; options on the command line win over it";
  if (short === "-h") return "implemented: `--help`";
  const c = classifyName(name ?? short);
  switch (c.status) {
    case "option": {
      const same = c.option === name ? "" : ` (as \`--${c.option}\`)`;
      return `implemented${same}: ${OPTIONS[c.option].description}`;
    }
    case "accepted": return `accepted, changes nothing: ${c.why}`;
    case "refused": return `**refused at start**: ${c.why}`;
    case "unknown": return "unknown";
  }
}

/** Markdown rows, one per coturn name, in coturn's order. */
export function coturnTable(names: readonly CoturnOptionName[]): string {
  const rows = names.map(({ name, short }) => {
    const label = name === null ? `\`${short}\`` : `\`${name}\`${short ? ` (\`${short}\`)` : ""}`;
    return `| ${label} | ${cell(behaviour(name ?? short!, short))} |`;
  });
  return ["| coturn | bunturn |", "| --- | --- |", ...rows].join("\n");
}
