/**
 * Struct layouts for Linux x86_64 / glibc, in one place. Taken from offsetof/sizeof of glibc's headers
 * on x86_64, and checked by test/ffi/layout.test.ts against the kernel's own behaviour.
 */

export const SOCKADDR_IN = { size: 16, family: 0, port: 2, addr: 4 } as const;
export const SOCKADDR_IN6 = { size: 28, family: 0, port: 2, flowinfo: 4, addr: 8, scopeId: 24 } as const;
export const SOCKADDR_STORAGE_SIZE = 128;
/** What we reserve per source/destination address slot: big enough for sockaddr_in6, 8-aligned. */
export const SOCKADDR_SLOT = 32;

export const IOVEC = { size: 16, base: 0, len: 8 } as const;

export const MSGHDR = {
  size: 56,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;

/** struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; } padded to 64. */
export const MMSGHDR = { size: 64, hdr: 0, len: 56 } as const;

/** struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then data aligned to 8. */
export const CMSGHDR = { size: 16, len: 0, level: 8, type: 12, data: 16 } as const;

export function cmsgAlign(n: number): number {
  return (n + 7) & ~7;
}
export function cmsgSpace(dataLen: number): number {
  return CMSGHDR.size + cmsgAlign(dataLen);
}
export function cmsgLen(dataLen: number): number {
  return CMSGHDR.size + dataLen;
}

/** struct epoll_event is packed on x86_64: u32 events, then u64 data at offset 4. */
export const EPOLL_EVENT = { size: 12, events: 0, data: 4 } as const;

/** struct sock_extended_err { u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad; u32 ee_info, ee_data; } */
export const SOCK_EXTENDED_ERR = { size: 16, errno: 0, origin: 4, type: 5, code: 6, info: 8, data: 12 } as const;

/**
 * Control space for one received datagram: TTL and TOS (IPv4: int + unsigned char; IPv6: int + int), and
 * UDP_GRO's int segment size. Sized for exactly those (coturn does the same for the first two); anything
 * more is cut and flagged MSG_CTRUNC.
 */
export const RECV_CONTROL_SPACE = cmsgSpace(4) * 3;
/** Control space for one sent datagram: TTL/hop limit and TOS/traffic class, both int. */
export const SEND_CONTROL_SPACE = cmsgSpace(4) * 2;
/** Control space for one GSO send: UDP_SEGMENT's u16, then the run's TTL/TOS. */
export const GSO_CONTROL_SPACE = cmsgSpace(2) + SEND_CONTROL_SPACE;

/** Writes a pointer (below 2^53, as every user-space address is) into a u32 view at a byte offset. */
export function writePointer(u32: Uint32Array, byteOffset: number, address: number): void {
  const i = byteOffset >>> 2;
  const low = address >>> 0; // ToUint32: the address modulo 2^32, exact for any integer below 2^53
  u32[i] = low;
  u32[i + 1] = (address - low) / 0x1_0000_0000;
}

export function readPointer(u32: Uint32Array, byteOffset: number): number {
  const i = byteOffset >>> 2;
  return u32[i]! + u32[i + 1]! * 0x1_0000_0000;
}

/** Host-order (little-endian on x86_64) 32-bit struct fields, read and written byte by byte. */
export function readHostU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
export function readHostI32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}
export function writeHostU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
