/**
 * The one ancillary-data parser: IP_TTL/IP_TOS (IPv4), IPV6_HOPLIMIT/IPV6_TCLASS (IPv6) and
 * IP_RECVERR/IPV6_RECVERR (sock_extended_err), UDP_GRO's segment size, plus the writer for outgoing
 * TTL/TOS (UDP_SEGMENT's is written by GsoMessage, word by word).
 */
import {
  IPPROTO_IP, IPPROTO_IPV6, IP_RECVERR, IP_TOS, IP_TTL,
  IPV6_HOPLIMIT, IPV6_RECVERR, IPV6_TCLASS, SOL_UDP, UDP_GRO,
} from "./constants.ts";
import { CMSGHDR, SOCK_EXTENDED_ERR, cmsgAlign, cmsgLen, cmsgSpace, readHostI32, readHostU32, writeHostU32 } from "./layout.ts";

/** Reused per engine; -1 means "not present". */
export class CmsgInfo {
  ttl = -1;
  tos = -1;
  /** sock_extended_err.ee_errno from IP_RECVERR/IPV6_RECVERR, 0 when none. */
  errno = 0;
  errOrigin = 0;
  errType = 0;
  errCode = 0;
  /** UDP_GRO: the buffer holds segments of this many bytes (the last may be shorter); 0 when none. */
  groSize = 0;

  reset(): void {
    this.groSize = 0;
    this.ttl = -1;
    this.tos = -1;
    this.errno = 0;
    this.errOrigin = 0;
    this.errType = 0;
    this.errCode = 0;
  }
}

/**
 * Walks the control messages in bytes[offset, offset+length) (length = msg_controllen after the call)
 * and fills `out`. Malformed lengths end the walk instead of reading past the buffer.
 */
export function parseCmsgs(bytes: Uint8Array, offset: number, length: number, out: CmsgInfo): CmsgInfo {
  out.reset();
  const end = offset + length;
  let at = offset;
  while (at + CMSGHDR.size <= end) {
    const len = readHostU32(bytes, at + CMSGHDR.len); // size_t, but never above 2^32 here
    if (len < CMSGHDR.size || at + len > end) break;
    const level = readHostI32(bytes, at + CMSGHDR.level);
    const type = readHostI32(bytes, at + CMSGHDR.type);
    const data = at + CMSGHDR.data;
    const dataLen = len - CMSGHDR.size;
    if (level === IPPROTO_IP) {
      // IP_TTL is an int; IP_TOS is delivered as a single unsigned char.
      if (type === IP_TTL && dataLen >= 4) out.ttl = readHostI32(bytes, data);
      else if (type === IP_TOS && dataLen >= 1) out.tos = bytes[data]!;
      else if (type === IP_RECVERR && dataLen >= SOCK_EXTENDED_ERR.size) readExtendedErr(bytes, data, out);
    } else if (level === IPPROTO_IPV6) {
      if (type === IPV6_HOPLIMIT && dataLen >= 4) out.ttl = readHostI32(bytes, data);
      else if (type === IPV6_TCLASS && dataLen >= 4) out.tos = readHostI32(bytes, data);
      else if (type === IPV6_RECVERR && dataLen >= SOCK_EXTENDED_ERR.size) readExtendedErr(bytes, data, out);
    } else if (level === SOL_UDP && type === UDP_GRO && dataLen >= 4) {
      out.groSize = readHostI32(bytes, data);
    }
    at += cmsgAlign(len);
  }
  return out;
}

function readExtendedErr(bytes: Uint8Array, data: number, out: CmsgInfo): void {
  out.errno = readHostU32(bytes, data + SOCK_EXTENDED_ERR.errno);
  out.errOrigin = bytes[data + SOCK_EXTENDED_ERR.origin]!;
  out.errType = bytes[data + SOCK_EXTENDED_ERR.type]!;
  out.errCode = bytes[data + SOCK_EXTENDED_ERR.code]!;
}

function writeIntCmsg(bytes: Uint8Array, at: number, level: number, type: number, value: number): number {
  bytes.fill(0, at, at + cmsgSpace(4));
  writeHostU32(bytes, at + CMSGHDR.len, cmsgLen(4));
  writeHostU32(bytes, at + CMSGHDR.level, level);
  writeHostU32(bytes, at + CMSGHDR.type, type);
  writeHostU32(bytes, at + CMSGHDR.data, value);
  return cmsgSpace(4);
}

/**
 * Writes TTL (hop limit) and TOS (traffic class) control messages for sendmsg; -1 leaves one out.
 * Both are ints on send for either family. Returns msg_controllen.
 */
export function writeTtlTos(bytes: Uint8Array, offset: number, ipv6: boolean, ttl: number, tos: number): number {
  let at = offset;
  if (ttl >= 0) at += writeIntCmsg(bytes, at, ipv6 ? IPPROTO_IPV6 : IPPROTO_IP, ipv6 ? IPV6_HOPLIMIT : IP_TTL, ttl);
  if (tos >= 0) at += writeIntCmsg(bytes, at, ipv6 ? IPPROTO_IPV6 : IPPROTO_IP, ipv6 ? IPV6_TCLASS : IP_TOS, tos);
  return at - offset;
}

