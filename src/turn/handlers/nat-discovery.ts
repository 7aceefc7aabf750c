/**
 * The Binding response of RFC 5780 NAT behaviour discovery (§6.1), for a UDP listener with an alternate
 * address: XOR-MAPPED-ADDRESS as always, RESPONSE-ORIGIN (§7.3) and OTHER-ADDRESS (§7.4); sent from the
 * listener CHANGE-REQUEST (§7.2) asks for, to the port RESPONSE-PORT (§7.5) names, with PADDING (§7.6)
 * when the request carried it.
 */
import { endpointFromBytes } from "../../net/endpoint.ts";
import {
  Attr, CHANGE_IP, CHANGE_PORT, ErrorCode, readChangeRequest, readResponsePort, writeOtherAddress, writePadding,
  writeResponseOrigin, writeUnknownAttributes, writeXorAddress,
} from "../../stun/index.ts";
import type { ListenerId } from "../api.ts";
import type { RequestContext } from "../request.ts";
import { seal } from "../responses.ts";

export function answerNatDiscovery(req: RequestContext, listener: ListenerId): void {
  const { state, d } = req;
  const discovery = state.natDiscovery!;
  let flags = 0;
  const change = d.indexOf(Attr.ChangeRequest);
  if (change >= 0) flags = readChangeRequest(d.bytes, d.offsets[change]!, d.lengths[change]!);
  let responsePort = -1;
  const port = d.indexOf(Attr.ResponsePort);
  if (port >= 0) responsePort = readResponsePort(d.bytes, d.offsets[port]!, d.lengths[port]!);
  const padding = d.indexOf(Attr.Padding);
  // Malformed values, a RESPONSE-PORT of 0 (nothing listens there) and PADDING with RESPONSE-PORT (a
  // padded answer sent elsewhere; coturn refuses the pair too) are bad requests (RFC 8489 §6.3.1.1).
  if (flags < 0 || (port >= 0 && responsePort <= 0) || (padding >= 0 && port >= 0)) return fail(req, ErrorCode.BadRequest);

  // §6.1: the response leaves from the alternate IP and/or port asked for. Without that listener the
  // CHANGE-REQUEST cannot be honoured: 420, as a server without an alternate address answers (§6).
  const from = discovery.changed(listener, (flags & CHANGE_IP) !== 0, (flags & CHANGE_PORT) !== 0);
  const origin = from === undefined ? undefined : discovery.localAddress(from);
  const other = discovery.otherAddress(listener);
  if (from === undefined || origin === undefined || other === undefined) {
    return fail(req, ErrorCode.UnknownAttribute, (w) => writeUnknownAttributes(w, [Attr.ChangeRequest]));
  }

  const w = req.success();
  writeXorAddress(w, Attr.XorMappedAddress, req.client);
  writeResponseOrigin(w, origin);
  writeOtherAddress(w, other);
  // §7.6 asks for the MTU; the request's own PADDING length is used instead, so that a small request
  // with a spoofed source cannot draw a large answer (amplification).
  if (padding >= 0) writePadding(w, d.lengths[padding]!);
  const response = seal(w, { software: state.software, fingerprint: req.fingerprint });
  // §7.5: to the request's source IP address at RESPONSE-PORT.
  const to = responsePort > 0 ? endpointFromBytes(req.client.address, responsePort) : req.client;
  state.reply(from, to, response);
  state.counters.bindingResponses++;
}

function fail(req: RequestContext, code: number, extend?: Parameters<RequestContext["fail"]>[1]): void {
  if (!req.state.mayAnswerUnauthenticated(req.client, req.now)) return;
  req.state.counters.bindingErrors++;
  req.fail(code, extend);
}
