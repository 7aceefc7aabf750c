/**
 * docs/migrating-from-coturn.md lists every coturn option with what bunturn does with it; the table is
 * drawn from the option tables (src/config/coturn-table.ts), and this test fails when the document
 * and the code differ. BUNTURN_WRITE_DOCS=1 rewrites the table in the document.
 */
import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { coturnTable } from "../../src/config/coturn-table.ts";
import { coturnOptionNames } from "./coturn-names.ts";

const DOC = join(import.meta.dir, "../../docs/migrating-from-coturn.md");
const BEGIN = "<!-- coturn-options: generated from src/config/options.ts and coturn-options.ts -->";
const END = "<!-- /coturn-options -->";

test("docs/migrating-from-coturn.md has every coturn option, as the code treats it", () => {
  const names = coturnOptionNames().map((o) => ({ name: o.name === "-" ? null : o.name, short: o.short }));
  const table = coturnTable(names);
  const doc = readFileSync(DOC, "utf8");
  const from = doc.indexOf(BEGIN);
  const to = doc.indexOf(END);
  expect(from).toBeGreaterThan(0);
  expect(to).toBeGreaterThan(from);
  const current = doc.slice(from + BEGIN.length, to).trim();
  if (process.env.BUNTURN_WRITE_DOCS === "1" && current !== table) {
    writeFileSync(DOC, `${doc.slice(0, from + BEGIN.length)}\n${table}\n${doc.slice(to)}`);
    return;
  }
  if (current !== table) {
    // An option added or its description changed: the document follows the code.
    throw new Error("docs/migrating-from-coturn.md's option table differs from src/config/options.ts and coturn-options.ts: run `BUNTURN_WRITE_DOCS=1 bun test test/config/migrating-doc.test.ts` and commit the document");
  }
  expect(table).not.toContain("| unknown |");
  expect(table.split("\n").length).toBe(names.length + 2);
});
