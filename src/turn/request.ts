/** One STUN request being answered (control path: allocating here is fine). */
import type { Endpoint } from "../net/endpoint.ts";
import { StunClass, type StunDecoder, type StunWriter } from "../stun/index.ts";
import type { ClientPath, FiveTuple, Millis } from "./api.ts";
import type { Allocation } from "./allocation.ts";
import { NO_AUTH, type AuthSuccess } from "./auth.ts";
import { seal, startError, startResponse } from "./responses.ts";
import type { ServerState } from "./state.ts";

export class RequestContext implements FiveTuple {
  auth: AuthSuccess = NO_AUTH;

  constructor(
    readonly state: ServerState,
    readonly listener: ClientPath,
    readonly client: Endpoint,
    readonly d: StunDecoder,
    readonly now: Millis,
    /** The request carried FINGERPRINT, so the response does too. */
    readonly fingerprint: boolean,
  ) {}

  get message(): Uint8Array {
    return this.d.bytes;
  }

  get allocation(): Allocation | undefined {
    return this.state.find(this.listener, this.client.key);
  }

  success(): StunWriter {
    return startResponse(this.d.bytes, this.d.method, StunClass.SuccessResponse);
  }

  /** Sends a response: SOFTWARE, integrity with the request's key, FINGERPRINT; remembered for retransmissions. */
  reply(w: StunWriter): void {
    const response = seal(w, {
      software: this.state.software,
      integrity: this.auth.integrity,
      fingerprint: this.fingerprint,
    });
    this.state.reply(this.listener, this.client, response);
    this.allocation?.rememberResponse(this.d.bytes, response, this.now);
  }

  /** Sends an error response (RFC 8489 §6.3.1.1); `extend` may add attributes after ERROR-CODE; `reason` overrides the RFC phrase. */
  fail(code: number, extend?: (w: StunWriter) => void, reason?: string): void {
    const w = startError(this.d.bytes, this.d.method, code, reason);
    extend?.(w);
    this.state.counters.errorsSent++;
    this.reply(w);
  }
}
