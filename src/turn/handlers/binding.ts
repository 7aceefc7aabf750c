/** Binding (RFC 8489 §6.3.1, §3): answer with the client's reflexive address. No authentication (coturn). */
import { Attr, writeXorAddress } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";

export function handleBinding(req: RequestContext): void {
  req.state.counters.bindingRequests++;
  const w = req.success();
  writeXorAddress(w, Attr.XorMappedAddress, req.client);
  req.reply(w);
  req.state.counters.bindingResponses++;
}
