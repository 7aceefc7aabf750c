/**
 * CHANGE-REQUEST (RFC 5780 §7.2): 32 bits of flags; "change IP" is 0x4 and "change port" is 0x2. The
 * client asks for the Binding response to leave from the server's alternate IP and/or port.
 */
import { Attr } from "../constants.ts";
import { readU32, type StunWriter } from "../writer.ts";

export const CHANGE_IP = 0x4;
export const CHANGE_PORT = 0x2;

/** The flags (CHANGE_IP | CHANGE_PORT, other bits dropped), or -1 when the value is not 4 bytes. */
export function readChangeRequest(m: Uint8Array, offset: number, length: number): number {
  if (length !== 4) return -1;
  return readU32(m, offset) & (CHANGE_IP | CHANGE_PORT);
}

export function writeChangeRequest(w: StunWriter, changeIp: boolean, changePort: boolean): void {
  w.addUint32(Attr.ChangeRequest, (changeIp ? CHANGE_IP : 0) | (changePort ? CHANGE_PORT : 0));
}
