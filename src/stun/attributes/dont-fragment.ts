/** DONT-FRAGMENT (RFC 8656 §18.10): a flag attribute with an empty value. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function isValidDontFragment(length: number): boolean {
  return length === 0;
}

export function writeDontFragment(w: StunWriter): void {
  w.addEmpty(Attr.DontFragment);
}
