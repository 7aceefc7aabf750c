/**
 * A transport address (IP + port) as the protocol core sees it.
 *
 * The engine decodes sockaddrs into these without building strings: an IPv4 endpoint's key is a plain
 * number (ip * 65536 + port), which makes the per-packet Map lookups cheap. IPv6 keys are strings; they
 * are built once per new source and cached by the engine.
 */
export type Family = 4 | 6;
export type EndpointKey = number | string;

export interface Endpoint {
  readonly family: Family;
  /** 4 or 16 bytes, network order. Never mutated after creation. */
  readonly address: Uint8Array;
  readonly port: number;
  /** Unique per (family, address, port); usable as a Map key. */
  readonly key: EndpointKey;
  /** Unique per (family, address); the key for permissions (RFC 8656 §9: permissions ignore the port). */
  readonly hostKey: EndpointKey;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function ipv4Endpoint(ipv4: number, port: number): Endpoint {
  const ip = ipv4 >>> 0;
  const address = new Uint8Array([ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff]);
  return { family: 4, address, port, key: ip * 65536 + port, hostKey: ip };
}

export function ipv6Endpoint(bytes: Uint8Array, port: number): Endpoint {
  const address = Uint8Array.from(bytes.subarray(0, 16));
  let host = "";
  for (let i = 0; i < 16; i++) host += HEX[address[i]!];
  return { family: 6, address, port, key: `${host}/${port}`, hostKey: host };
}

export function endpointFromBytes(address: Uint8Array, port: number): Endpoint {
  if (address.length === 4) {
    return ipv4Endpoint(((address[0]! << 24) | (address[1]! << 16) | (address[2]! << 8) | address[3]!) >>> 0, port);
  }
  if (address.length === 16) return ipv6Endpoint(address, port);
  throw new RangeError(`address must be 4 or 16 bytes, got ${address.length}`);
}

/** Parses a textual IPv4 or IPv6 address (no brackets, no zone). Returns null when it is not one. */
export function parseIp(text: string): Uint8Array | null {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  let head = text;
  let v4tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    v4tail = parseIpv4(text.slice(lastColon + 1));
    if (!v4tail) return null;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...left, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  if (v4tail) out.set(v4tail, 12);
  return out;
}

export function parseEndpoint(ip: string, port: number): Endpoint {
  const bytes = parseIp(ip);
  if (!bytes) throw new RangeError(`not an IP address: ${ip}`);
  return endpointFromBytes(bytes, port);
}

export function formatIp(address: Uint8Array): string {
  if (address.length === 4) return address.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((address[i]! << 8) | address[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLen).join(":")}`;
}

/** An address in text and a port as written in a URL or a log line: `1.2.3.4:3478`, `[::1]:3478`. */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function formatEndpoint(e: Endpoint): string {
  return e.family === 4 ? `${formatIp(e.address)}:${e.port}` : `[${formatIp(e.address)}]:${e.port}`;
}
