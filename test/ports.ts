/**
 * Loopback ports for tests and benches, one implementation for both: listening ports in 30000-39999,
 * below the relay windows (tests: relayRange, 40000-64000; benches: 20000-29999 or 40000+), so a
 * listener never lands in a relay range of the same run.
 */
import { canBindUdp, closeSocket, openTcpListener } from "../ffi/index.ts";
import { parseIp } from "../src/net/endpoint.ts";

const LOOPBACK4 = parseIp("127.0.0.1")!;
const LOOPBACK6 = parseIp("::1")!;
/** Hosts without IPv6 cannot bind ::1 at all: then only 127.0.0.1 has to be free. */
const HAVE_IPV6 = canBindUdp(LOOPBACK6, 0);

/** Whether a UDP socket can bind ip:port right now. */
export function isUdpFree(ip: string, port: number): boolean {
  return canBindUdp(parseIp(ip)!, port);
}

/**
 * Whether a TCP listener can bind 127.0.0.1:port right now, as the relay's does: these ports sit in the
 * kernel's ephemeral range, so a test's own client connections can hold one (the relay would then fail
 * to start with EADDRINUSE).
 */
function isTcpFree(port: number): boolean {
  try {
    closeSocket(openTcpListener({ family: 4, address: LOOPBACK4, port }));
    return true;
  } catch {
    return false;
  }
}

let nextPort = 30000 + Math.floor(Math.random() * 5000);

/** A UDP port free right now on 127.0.0.1, and on ::1 when the host has IPv6; free for TCP on 127.0.0.1 too. */
export function freePort(): number {
  for (let tries = 0; tries < 10000; tries++) {
    const port = nextPort++;
    if (nextPort > 39999) nextPort = 30000;
    if (canBindUdp(LOOPBACK4, port) && (!HAVE_IPV6 || canBindUdp(LOOPBACK6, port)) && isTcpFree(port)) return port;
  }
  throw new Error("no free UDP port in 30000-39999");
}

let nextRange = 40000 + Math.floor(Math.random() * 40) * 500;

/** A relay port window nobody else in this run uses. */
export function relayRange(size = 400): [number, number] {
  const min = nextRange;
  nextRange += 500;
  if (nextRange > 64000) nextRange = 40000;
  return [min, min + size - 1];
}
