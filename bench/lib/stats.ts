/** Medians and ratios for bench summaries. */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function ratio(a: number, b: number): number {
  return b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? NaN : round(a / b, 3);
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Alternated runs pair up (run k of A beside run k of B, taken moments apart), so the machine's slow
 * drifts cancel within a pair: the median of the per-pair ratios A/B, and in how many pairs A was below B.
 */
export function pairedRatio(a: number[], b: number[]): { median: number; below: number; pairs: number } {
  const ratios: number[] = [];
  let below = 0;
  for (let k = 0; k < Math.min(a.length, b.length); k++) {
    const r = ratio(a[k]!, b[k]!);
    if (!Number.isFinite(r)) continue;
    ratios.push(r);
    if (a[k]! < b[k]!) below++;
  }
  return { median: median(ratios), below, pairs: ratios.length };
}

/** Prints one JSON line (the machine-readable output of every bench). */
export function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}
