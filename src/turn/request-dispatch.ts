/**
 * One STUN request's way through the core (RFC 8489 §6.3.1, RFC 8656): Binding answered unauthenticated,
 * anything not TURN refused, a retransmission given its cached response, a new allocation redirected or
 * refused (./redirect.ts), authentication, unknown attributes, the allocation's owner, then the method's
 * handler (./handlers). Apart from server.ts, which classifies datagrams and takes the engine's events.
 */
import type { Endpoint } from "../net/endpoint.ts";
import { ErrorCode, StunMethod, writeUnknownAttributes, type StunDecoder } from "../stun/index.ts";
import type { ClientPath, Millis } from "./api.ts";
import { handleConnect } from "./handlers/connect.ts";
import { connectionBindNonceSource, handleConnectionBind } from "./handlers/connection-bind.ts";
import { handleAllocate } from "./handlers/allocate.ts";
import { handleBinding } from "./handlers/binding.ts";
import { handleChannelBind } from "./handlers/channel-bind.ts";
import { handleCreatePermission } from "./handlers/create-permission.ts";
import { handleRefresh } from "./handlers/refresh.ts";
import { admissionOf, redirectUnauthenticated, refuseAuthenticated } from "./redirect.ts";
import { RequestContext } from "./request.ts";
import { seal, startError } from "./responses.ts";
import type { ServerState } from "./state.ts";

/** A request from `client` on `listener`, decoded in `d` (a view valid only during this call). */
export function handleRequest(state: ServerState, listener: ClientPath, client: Endpoint, d: StunDecoder, now: Millis): void {
  state.lastNow = now;
  const req = new RequestContext(state, listener, client, d, now, d.fingerprint >= 0);
  const method = d.method;

  // Error responses to requests that prove no key (the 420 to Binding, the 400 to other methods, the
  // 401 challenge) go out only within the source's rate limit: their source may be spoofed.
  if (method === StunMethod.Binding) {
    if (state.noStun) return; // coturn --no-stun: a TURN-only server stays silent to Binding
    // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420 there (RFC 5780's are known
    // on a listener with an alternate address); Binding needs no authentication.
    return handleBinding(req);
  }
  const isTurnRequest = method === StunMethod.Allocate || method === StunMethod.Refresh ||
    method === StunMethod.CreatePermission || method === StunMethod.ChannelBind ||
    (state.tcp.io !== undefined && (method === StunMethod.Connect || method === StunMethod.ConnectionBind));
  // coturn --stun-only: TURN methods are treated as unknown ones (RFC 8489 §6.3.1: 400).
  if (!isTurnRequest || state.stunOnly) {
    if (!state.mayAnswerUnauthenticated(client, now)) return;
    state.counters.errorsSent++;
    state.reply(listener, client, seal(startError(d.bytes, method, ErrorCode.BadRequest), { fingerprint: req.fingerprint }));
    return;
  }

  // RFC 8489 §6.3.1 / RFC 8656 §7.2: a retransmission gets the very same response, with no new side effects.
  const existing = req.allocation;
  if (existing !== undefined) {
    const cached = existing.cachedResponse(d.bytes, now);
    if (cached !== undefined) {
      state.reply(listener, client, cached);
      return;
    }
  }

  // RFC 8656 §7.2 / RFC 8489 §10: a new allocation may be sent elsewhere (or refused while draining).
  // An Allocate that proves no key is redirected before authentication, as coturn does (./redirect.ts).
  let admission: Endpoint | "refuse" | undefined;
  const newAllocation = method === StunMethod.Allocate && existing === undefined;
  const provesKey = d.integrity >= 0 || d.integritySha256 >= 0;
  if (newAllocation && (!provesKey || state.auth === null)) {
    admission = admissionOf(req);
    if (admission !== undefined && admission !== "refuse") return redirectUnauthenticated(req, admission);
  }

  if (state.auth !== null) {
    const nonceSource = method === StunMethod.ConnectionBind ? connectionBindNonceSource(state, d, client) : client;
    const result = state.auth.check(d, nonceSource, now, req.fingerprint);
    if (!result.ok) {
      // A 438 comes only after MESSAGE-INTEGRITY checked out: that client holds the key.
      if (result.code !== ErrorCode.StaleNonce && !state.mayAnswerUnauthenticated(client, now)) return;
      state.counters.errorsSent++;
      if (result.code === ErrorCode.Unauthenticated) state.counters.unauthorized++;
      state.reply(listener, client, result.response);
      return;
    }
    req.auth = result;
  }
  // RFC 8489 §6.3.1: after authentication, unknown comprehension-required attributes mean 420.
  if (d.unknownCount !== 0) return unknownAttributes(req);
  // RFC 8656 §5: every request on an allocation must come from the user who created it.
  if (existing !== undefined && existing.username !== req.auth.username) return req.fail(ErrorCode.WrongCredentials);

  if (newAllocation) {
    if (provesKey && state.auth !== null) admission = admissionOf(req);
    if (admission !== undefined) return refuseAuthenticated(req, admission);
  }

  switch (method) {
    case StunMethod.Allocate: return handleAllocate(req);
    case StunMethod.Refresh: return handleRefresh(req);
    case StunMethod.CreatePermission: return handleCreatePermission(req);
    case StunMethod.ChannelBind: return handleChannelBind(req);
    case StunMethod.Connect: return handleConnect(req);
    case StunMethod.ConnectionBind: return handleConnectionBind(req);
  }
}

/** RFC 8489 §6.3.1.1: 420 listing the attributes we do not understand. */
function unknownAttributes(req: RequestContext): void {
  const d = req.d;
  req.fail(ErrorCode.UnknownAttribute, (w) => writeUnknownAttributes(w, d.unknown.subarray(0, d.unknownCount)));
}
