/**
 * ConnectionBind (RFC 6062 §5.4): a new client data connection claims the peer connection its
 * CONNECTION-ID names; after the success response the two connections are one byte pipe (the engine's),
 * and this client connection speaks no more STUN.
 */
import type { Endpoint } from "../../net/endpoint.ts";
import { peerConnectionId } from "../api.ts";
import { Attr, ErrorCode, readConnectionId, type StunDecoder } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";
import type { ServerState } from "../state.ts";
import type { PeerConnection } from "../tcp-allocations.ts";

function namedConnection(state: ServerState, d: StunDecoder): PeerConnection | undefined {
  const at = d.indexOf(Attr.ConnectionId);
  const id = at < 0 ? null : readConnectionId(d.bytes, d.offsets[at]!, d.lengths[at]!);
  return id === null || id === 0 ? undefined : state.tcp.get(peerConnectionId(id));
}

/**
 * Whose nonce a ConnectionBind carries: clients (coturn's among them) send the nonce of their control
 * connection, which names that connection's source port; the data connection comes from another port
 * of the same host. So the nonce is judged for the allocation's client when the request comes from its
 * IP address (MESSAGE-INTEGRITY still proves the key), and for the data connection's source otherwise.
 */
export function connectionBindNonceSource(state: ServerState, d: StunDecoder, client: Endpoint): Endpoint {
  const owner = namedConnection(state, d)?.allocation.client;
  return owner !== undefined && owner.hostKey === client.hostKey ? owner : client;
}

export function handleConnectionBind(req: RequestContext): void {
  const { d, state } = req;
  const listener = req.listener;
  // §5.4: only over TCP or TLS, and on a connection that is not a control connection (no allocation on it).
  if (!state.isStream(listener) || req.allocation !== undefined || state.hasAllocationOn(listener)) return req.fail(ErrorCode.BadRequest);
  // §5.4: an unknown CONNECTION-ID, or one that is still connecting or bound already: 400.
  const c = namedConnection(state, d);
  if (c === undefined || c.state !== "awaiting-bind") return req.fail(ErrorCode.BadRequest);
  // RFC 8656 §5 (as for every request on an allocation): the allocation's own user binds its connections.
  if (c.allocation.username !== req.auth.username) return req.fail(ErrorCode.WrongCredentials);
  state.counters.tcpConnectionBinds++;
  req.reply(req.success());
  state.tcp.bound(c, listener);
}
