/**
 * Limits on TCP and TLS client connections (what one attacker may hold of the server): connection caps,
 * the TLS handshake timeout and buffered bytes. Defaults are far above what a real deployment reaches
 * and far below what exhausts the host; docs/tcp-tls.md explains each.
 */
import type { OptionName, RawOptions } from "./options.ts";
import { get } from "./raw-options.ts";

/** resolve.ts passes its ConfigError thrower: this module does not import resolve.ts (no import cycle). */
type Fail = (message: string) => never;

export interface StreamLimits {
  /** Client connections (TCP + TLS) on the whole server; 0 = derived from the descriptor limit at start. */
  maxConnections: number;
  /** Client connections from one IPv4 address or IPv6 /64; 0 = unlimited. */
  maxConnectionsPerIp: number;
  /** A TLS client that has not finished its handshake by then is closed. */
  tlsHandshakeTimeoutMs: number;
  /** A TCP client (TLS: after the handshake) that has sent no whole message by then is closed. */
  firstMessageTimeoutMs: number;
  /** Bytes one connection may hold: unread replies (TLS: encrypted ones). */
  maxBufferPerConnection: number;
  /** Bytes all connections of one engine may hold together, partial frames included. */
  maxBufferPerEngine: number;
}

function value(raw: RawOptions, name: OptionName, fail: Fail): number {
  const n = get<number>(raw, name);
  if (!(Number.isInteger(n) && n >= 0)) fail(`--${name}: must be 0 or more, got ${n}`);
  return n;
}

export function resolveStreamLimits(raw: RawOptions, fail: Fail): StreamLimits {
  const handshake = value(raw, "tls-handshake-timeout", fail);
  if (handshake === 0) fail("--tls-handshake-timeout: must be above 0 seconds");
  const firstMessage = value(raw, "tcp-first-message-timeout", fail);
  if (firstMessage === 0) fail("--tcp-first-message-timeout: must be above 0 seconds");
  const perConnection = value(raw, "max-tcp-buffer", fail);
  const perEngine = value(raw, "max-tcp-buffer-total", fail);
  // One connection must be able to hold a whole reply, or no client could ever be answered.
  if (perConnection < 65536 + 24) fail(`--max-tcp-buffer: must be at least 65560 bytes (one largest message), got ${perConnection}`);
  if (perEngine < perConnection) fail(`--max-tcp-buffer-total: must be at least --max-tcp-buffer (${perConnection}), got ${perEngine}`);
  return {
    maxConnections: value(raw, "max-tcp-connections", fail),
    maxConnectionsPerIp: value(raw, "max-tcp-connections-per-ip", fail),
    tlsHandshakeTimeoutMs: handshake * 1000,
    firstMessageTimeoutMs: firstMessage * 1000,
    maxBufferPerConnection: perConnection,
    maxBufferPerEngine: perEngine,
  };
}
