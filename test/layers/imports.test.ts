/**
 * The module graph of src/ and ffi/, read from the import and export-from statements (type-only ones
 * too): no cycle anywhere, and the layers of docs/architecture.md hold (ffi knows no TURN, the protocol
 * core no engine, no socket and no clock).
 */
import { expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = join(import.meta.dir, "../..");

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

/** file -> the repository files it imports (relative specifiers only; packages and bun:/node: are leaves). */
function graph(): Map<string, string[]> {
  const edges = new Map<string, string[]>();
  for (const file of [...sources("src"), ...sources("ffi")]) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const targets: string[] = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gms)) {
      targets.push(relative(ROOT, resolve(ROOT, dirname(file), m[1]!)));
    }
    edges.set(file, targets);
  }
  return edges;
}

test("no import cycle in src/ or ffi/", () => {
  const edges = graph();
  expect(edges.size).toBeGreaterThan(50);
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    path.push(file);
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === "open") cycles.push([...path.slice(path.indexOf(next)), next].join(" -> "));
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of edges.keys()) if (!state.has(file)) visit(file);
  expect(cycles).toEqual([]);
});

test("the layers hold: ffi imports only ffi; src/stun and src/turn import no engine, cli, config or ffi", () => {
  const violations: string[] = [];
  for (const [file, targets] of graph()) {
    for (const target of targets) {
      const ffiOut = file.startsWith("ffi/") && !target.startsWith("ffi/");
      const coreOut = /^src\/(stun|turn)\//.test(file) && /^(ffi\/|src\/(engine|cli|config|metrics)\/)/.test(target);
      if (ffiOut || coreOut) violations.push(`${file} -> ${target}`);
    }
  }
  expect(violations).toEqual([]);
});
