/**
 * Building responses (RFC 8489 §6.3.1.1, §6.3.1.2): same method and transaction id as the request,
 * SOFTWARE when configured, MESSAGE-INTEGRITY(-SHA256) with the request's key when it was authenticated,
 * FINGERPRINT when the request carried one.
 */
import { StunClass, StunWriter, writeErrorCode, writeFingerprint, writeMessageIntegrity, writeMessageIntegritySha256, writeSoftware } from "../stun/index.ts";

export interface IntegrityKey {
  readonly key: Uint8Array;
  /** Respond with MESSAGE-INTEGRITY-SHA256 (the request used it) instead of MESSAGE-INTEGRITY. */
  readonly sha256: boolean;
}

export interface Sealing {
  software?: Uint8Array | undefined;
  integrity?: IntegrityKey | null | undefined;
  fingerprint: boolean;
}

export function startResponse(request: Uint8Array, method: number, cls: StunClass): StunWriter {
  return new StunWriter(method, cls, request.subarray(8, 20));
}

export function startError(request: Uint8Array, method: number, code: number, reason?: string): StunWriter {
  const w = startResponse(request, method, StunClass.ErrorResponse);
  writeErrorCode(w, code, reason);
  return w;
}

/** Appends the trailing attributes and returns the finished message. */
export function seal(w: StunWriter, s: Sealing): Uint8Array {
  if (s.software !== undefined) writeSoftware(w, s.software);
  if (s.integrity) {
    if (s.integrity.sha256) writeMessageIntegritySha256(w, s.integrity.key);
    else writeMessageIntegrity(w, s.integrity.key);
  }
  if (s.fingerprint) writeFingerprint(w);
  return w.finish();
}
