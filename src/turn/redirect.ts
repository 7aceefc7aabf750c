/**
 * Allocates this server does not take: 300 Try Alternate with ALTERNATE-SERVER (RFC 8656 §7.2, RFC 8489
 * §10 and §14.15; the client retries there with the same transport and credentials, RFC 8656 §7.4), or
 * 403 Forbidden while draining with nowhere to send the client (coturn's reason phrase).
 *
 * Integrity (RFC 8489 §10: the 300 MAY be authenticated; §9.2.5: a client that authenticated its request
 * checks MESSAGE-INTEGRITY on the response): an Allocate without MESSAGE-INTEGRITY, the first of a
 * long-term client, is redirected at once, unsigned, as coturn does, and only within the unauthenticated
 * rate limit (its source may be spoofed). An authenticated Allocate is redirected only after its
 * credentials checked out, and the 300 is signed with the same key, so such a client accepts it.
 */
import type { Endpoint } from "../net/endpoint.ts";
import { Attr, ErrorCode, writeAddress } from "../stun/index.ts";
import type { RequestContext } from "./request.ts";
import { seal, startError } from "./responses.ts";

export const DRAINING_REASON = "Server is draining, then will shutdown, please try another server";

/** What the admission says for this request's Allocate; undefined when there is none or it admits. */
export function admissionOf(req: RequestContext): Endpoint | "refuse" | undefined {
  return req.state.admission?.admit(req.listener, req.client);
}

/** The 300 to an Allocate that proved no key: unsigned, rate-limited like the 401 it stands in for. */
export function redirectUnauthenticated(req: RequestContext, alternate: Endpoint): void {
  const { state, d } = req;
  if (!state.mayAnswerUnauthenticated(req.client, req.now)) return;
  const w = startError(d.bytes, d.method, ErrorCode.TryAlternate);
  writeAddress(w, Attr.AlternateServer, alternate);
  state.counters.errorsSent++;
  state.counters.redirected++;
  state.reply(req.listener, req.client, seal(w, { software: state.software, fingerprint: req.fingerprint }));
}

/** After authentication: 300 signed with the request's key, or 403 when there is nowhere to send it. */
export function refuseAuthenticated(req: RequestContext, decision: Endpoint | "refuse"): void {
  if (decision === "refuse") {
    req.state.counters.drainRefused++;
    return req.fail(ErrorCode.Forbidden, undefined, DRAINING_REASON);
  }
  req.state.counters.redirected++;
  req.fail(ErrorCode.TryAlternate, (w) => writeAddress(w, Attr.AlternateServer, decision));
}
