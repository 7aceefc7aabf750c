import type { StunClass } from "./constants.ts";

/**
 * RFC 8489 §5: the 14-bit message type interleaves the 12-bit method (M11..M0) with the
 * two class bits C1 (bit 8) and C0 (bit 4).
 */
export function encodeMessageType(method: number, cls: StunClass): number {
  return (
    (method & 0x000f) |
    ((method & 0x0070) << 1) |
    ((method & 0x0f80) << 2) |
    ((cls & 0x1) << 4) |
    ((cls & 0x2) << 7)
  );
}

export function methodOf(messageType: number): number {
  return (messageType & 0x000f) | ((messageType & 0x00e0) >> 1) | ((messageType & 0x3e00) >> 2);
}

export function classOf(messageType: number): StunClass {
  return (((messageType >> 4) & 0x1) | ((messageType >> 7) & 0x2)) as StunClass;
}
