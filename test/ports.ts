/**
 * Loopback ports for tests and benches, one implementation for both: every port a test's or bench's
 * server listens on or relays from comes from here.
 *
 * They stay out of the kernel's ephemeral range (net.ipv4.ip_local_port_range), where every socket
 * bound to port 0 and every outgoing connection gets its port: a test's own clients would otherwise take
 * a port its next server is about to bind, and that start fails with EADDRINUSE. The room outside it
 * (below it from 10000 up, ports under 10000 being the host's services; or above it when that is
 * bigger) is cut into slices. A process claims a slice for its lifetime by binding the slice's lock
 * port, so test runs and benches side by side never share a port; bun runs test files one after
 * another in one process, which shares one slice.
 */
import { readFileSync } from "node:fs";
import { canBindUdp, closeSocket, openTcpListener, openUdpSocket } from "../ffi/index.ts";
import { parseIp } from "../src/net/endpoint.ts";

const LOOPBACK4 = parseIp("127.0.0.1")!;
const LOOPBACK6 = parseIp("::1")!;
/** Hosts without IPv6 cannot bind ::1 at all: then only 127.0.0.1 has to be free. */
const HAVE_IPV6 = canBindUdp(LOOPBACK6, 0);

/** net.ipv4.ip_local_port_range, read now: where port-0 binds and outgoing connections get their ports. */
export function ephemeralRange(): [number, number] {
  const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  return [lo!, hi!];
}

const FLOOR = 10000;
/** Lock ports first (one per slice), then the slices. */
const LOCKS = 100;
const SLICE = 2000;
/** In the process's own slice: listening ports first, then relay ranges. */
const LISTENING = 100;

/** The room outside the ephemeral range, as slices: [first port of the first slice, slice count]. */
function layout(): { locks: number; first: number; count: number } {
  const [ephLo, ephHi] = ephemeralRange();
  const below: [number, number] = [FLOOR, Math.min(ephLo, 65536) - 1];
  const above: [number, number] = [Math.max(ephHi + 1, FLOOR), 65535];
  const [lo, hi] = below[1] - below[0] >= above[1] - above[0] ? below : above;
  const count = Math.min(LOCKS, Math.floor((hi - lo + 1 - LOCKS) / SLICE));
  if (count < 1) {
    throw new Error(`the ephemeral port range ${ephLo}-${ephHi} leaves no ${LOCKS + SLICE} ports free above ${FLOOR} for test servers: narrow it (sysctl net.ipv4.ip_local_port_range)`);
  }
  return { locks: lo, first: lo + LOCKS, count };
}

const LAYOUT = layout();

/** Claims `n` adjacent slices nobody holds, for the rest of this process: their first port. */
function claimSlices(n: number): number {
  for (let start = 0; start + n <= LAYOUT.count; start++) {
    const locks: number[] = [];
    for (let k = start; k < start + n; k++) {
      try {
        // Never closed: the kernel lets go of it when this process exits, however it exits.
        locks.push(openUdpSocket({ family: 4, address: LOOPBACK4, port: LAYOUT.locks + k }));
      } catch {
        break;
      }
    }
    if (locks.length === n) return LAYOUT.first + start * SLICE;
    for (const fd of locks) closeSocket(fd);
  }
  throw new Error(`no ${n} adjacent port slices free in ${LAYOUT.first}-${LAYOUT.first + LAYOUT.count * SLICE - 1}: other test runs or benches hold them`);
}

let own: { base: number; nextListening: number; nextRelay: number } | undefined;

function ownSlice(): { base: number; nextListening: number; nextRelay: number } {
  if (!own) {
    const base = claimSlices(1);
    own = { base, nextListening: 0, nextRelay: LISTENING };
  }
  return own;
}

/** Whether a UDP socket can bind ip:port right now. */
export function isUdpFree(ip: string, port: number): boolean {
  return canBindUdp(parseIp(ip)!, port);
}

/** Whether a TCP listener can bind 127.0.0.1:port right now, as the relay's does. */
function isTcpFree(port: number): boolean {
  try {
    closeSocket(openTcpListener({ family: 4, address: LOOPBACK4, port }));
    return true;
  } catch {
    return false;
  }
}

/**
 * A port for a server to listen on: free for UDP on 127.0.0.1 (and ::1 when the host has IPv6) and for
 * TCP on 127.0.0.1. Handed out in turn, so it stays this caller's until the process has asked for
 * LISTENING more.
 */
export function freePort(): number {
  const slice = ownSlice();
  for (let tries = 0; tries < LISTENING; tries++) {
    const port = slice.base + slice.nextListening;
    slice.nextListening = (slice.nextListening + 1) % LISTENING;
    if (canBindUdp(LOOPBACK4, port) && (!HAVE_IPV6 || canBindUdp(LOOPBACK6, port)) && isTcpFree(port)) return port;
  }
  throw new Error(`no free port in ${slice.base}-${slice.base + LISTENING - 1}: servers of this process still hold them all`);
}

/**
 * A relay port range (--min-port/--max-port) nobody else uses: the next `size` ports of this process's
 * slice, or for a bench's larger range, adjacent slices of its own.
 */
export function relayRange(size = 400): [number, number] {
  if (size > SLICE - LISTENING) {
    const min = claimSlices(Math.ceil(size / SLICE));
    return [min, min + size - 1];
  }
  const slice = ownSlice();
  if (slice.nextRelay + size > SLICE) slice.nextRelay = LISTENING;
  const min = slice.base + slice.nextRelay;
  slice.nextRelay += size;
  return [min, min + size - 1];
}
