/**
 * The process's descriptor limit (RLIMIT_NOFILE) through getrlimit/setrlimit. Every socket of every
 * engine and of the TLS front end is a descriptor of the one process, so this is the budget they share.
 */
import { dlopen, FFIType } from "bun:ffi";

const RLIMIT_NOFILE = 7;
const { i32, ptr } = FFIType;
const lib = dlopen("libc.so.6", {
  getrlimit: { args: [i32, ptr], returns: i32 },
  setrlimit: { args: [i32, ptr], returns: i32 },
});

export interface DescriptorLimit {
  soft: number;
  hard: number;
}

/** struct rlimit: rlim_cur, rlim_max (two 64-bit values); RLIM_INFINITY reads as a huge number. */
export function descriptorLimit(): DescriptorLimit {
  const cell = new BigUint64Array(2);
  if (lib.symbols.getrlimit(RLIMIT_NOFILE, cell) !== 0) return { soft: 1024, hard: 1024 };
  const clamp = (v: bigint) => (v > 1n << 40n ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: clamp(cell[0]!), hard: clamp(cell[1]!) };
}

/**
 * Raises the soft limit to the hard one (what an unprivileged process may do), as servers that hold
 * many sockets do at start; returns the limit in force afterwards.
 */
export function raiseDescriptorLimit(): DescriptorLimit {
  const now = descriptorLimit();
  if (now.soft >= now.hard) return now;
  const cell = new BigUint64Array(2);
  if (lib.symbols.getrlimit(RLIMIT_NOFILE, cell) !== 0) return now;
  cell[0] = cell[1]!;
  lib.symbols.setrlimit(RLIMIT_NOFILE, cell);
  return descriptorLimit();
}
