/**
 * PASSWORD-ALGORITHMS (RFC 8489 §14.11) and PASSWORD-ALGORITHM (§14.12). Each entry is
 * algorithm(16) + parameters length(16) + parameters (padded); MD5 and SHA-256 take no parameters.
 */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export const PasswordAlgorithm = { MD5: 0x0001, SHA256: 0x0002 } as const;
export type PasswordAlgorithm = (typeof PasswordAlgorithm)[keyof typeof PasswordAlgorithm];

export interface PasswordAlgorithmEntry {
  algorithm: number;
  parameters: Uint8Array;
}

/** Parses a PASSWORD-ALGORITHMS value, or null when an entry overruns it. */
export function readPasswordAlgorithms(m: Uint8Array, offset: number, length: number): PasswordAlgorithmEntry[] | null {
  const out: PasswordAlgorithmEntry[] = [];
  const end = offset + length;
  let pos = offset;
  while (pos < end) {
    if (pos + 4 > end) return null;
    const algorithm = (m[pos]! << 8) | m[pos + 1]!;
    const paramLength = (m[pos + 2]! << 8) | m[pos + 3]!;
    const next = pos + 4 + ((paramLength + 3) & ~3);
    if (pos + 4 + paramLength > end || next > end) return null;
    out.push({ algorithm, parameters: m.slice(pos + 4, pos + 4 + paramLength) });
    pos = next;
  }
  return out;
}

/** Parses a PASSWORD-ALGORITHM value (a single entry), or null when malformed. */
export function readPasswordAlgorithm(m: Uint8Array, offset: number, length: number): PasswordAlgorithmEntry | null {
  const list = readPasswordAlgorithms(m, offset, length);
  return list !== null && list.length === 1 ? list[0]! : null;
}

export function writePasswordAlgorithms(w: StunWriter, algorithms: readonly number[]): void {
  const at = w.reserve(Attr.PasswordAlgorithms, algorithms.length * 4);
  const b = w.buffer;
  algorithms.forEach((a, i) => {
    b[at + i * 4] = a >> 8;
    b[at + i * 4 + 1] = a & 0xff;
  });
}

export function writePasswordAlgorithm(w: StunWriter, algorithm: number): void {
  const at = w.reserve(Attr.PasswordAlgorithm, 4);
  w.buffer[at] = algorithm >> 8;
  w.buffer[at + 1] = algorithm & 0xff;
}

/** Byte-wise equality of a received PASSWORD-ALGORITHMS value with the list we advertise. */
export function passwordAlgorithmsEqual(m: Uint8Array, offset: number, length: number, advertised: readonly number[]): boolean {
  const list = readPasswordAlgorithms(m, offset, length);
  if (list === null || list.length !== advertised.length) return false;
  return list.every((e, i) => e.algorithm === advertised[i] && e.parameters.length === 0);
}
