/**
 * Binding (RFC 8489 §6.3.1, §3): answer with the client's reflexive address. No authentication (coturn).
 * On a UDP listener with an alternate address (--rfc5780) RFC 5780's attributes are understood and the
 * answer is built by ./nat-discovery.ts; elsewhere they are unknown comprehension-required attributes.
 */
import { Attr, ErrorCode, StunDecoder, readChangeRequest, writeUnknownAttributes, writeXorAddress } from "../../stun/index.ts";
import { isConnection, type ListenerId } from "../api.ts";
import type { RequestContext } from "../request.ts";
import { answerNatDiscovery } from "./nat-discovery.ts";

const NONE = new Uint16Array(0);

export function handleBinding(req: RequestContext): void {
  const { state, d } = req;
  const served = !isConnection(req.listener) && state.natDiscovery?.localAddress(req.listener) !== undefined;
  const unknown = d.unknownCount === 0 ? NONE : unknownForBinding(d, served);
  if (unknown.length !== 0) {
    // RFC 8489 §6.3.1.1: 420 listing them. The request proves no key: within the source's rate limit.
    if (!state.mayAnswerUnauthenticated(req.client, req.now)) return;
    state.counters.bindingRequests++;
    state.counters.bindingErrors++;
    return req.fail(ErrorCode.UnknownAttribute, (w) => writeUnknownAttributes(w, unknown));
  }
  state.counters.bindingRequests++;
  if (served) return answerNatDiscovery(req, req.listener as ListenerId);
  const w = req.success();
  writeXorAddress(w, Attr.XorMappedAddress, req.client);
  req.reply(w);
  state.counters.bindingResponses++;
}

/**
 * The request's unknown comprehension-required attributes, less those this listener serves: RFC 5780's
 * three where it has an alternate address, and anywhere a CHANGE-REQUEST that asks for no change (it is
 * honoured by answering as usual; coturn accepts it too, for clients that always send one).
 */
function unknownForBinding(d: StunDecoder, served: boolean): Uint16Array {
  const kept: number[] = [];
  for (const type of d.unknown.subarray(0, d.unknownCount)) {
    if (served && (type === Attr.ChangeRequest || type === Attr.ResponsePort || type === Attr.Padding)) continue;
    if (type === Attr.ChangeRequest && asksNoChange(d)) continue;
    kept.push(type);
  }
  return Uint16Array.from(kept);
}

function asksNoChange(d: StunDecoder): boolean {
  const i = d.indexOf(Attr.ChangeRequest);
  return i >= 0 && readChangeRequest(d.bytes, d.offsets[i]!, d.lengths[i]!) === 0;
}
