/** A STUN Binding request (RFC 8489 §6) with a fresh transaction ID: the first message a TCP/TLS test client sends. */
export function bindingRequest(): Uint8Array {
  const m = new Uint8Array(20);
  m.set([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
  m.set(crypto.getRandomValues(new Uint8Array(12)), 8);
  return m;
}
