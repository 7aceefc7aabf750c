/**
 * ConnectionBind (RFC 6062 §5.4): a new client data connection claims the peer connection its
 * CONNECTION-ID names; after the success response the two connections are one byte pipe (the engine's),
 * and this client connection speaks no more STUN.
 */
import { isConnection } from "../api.ts";
import { peerConnectionId } from "../api.ts";
import { Attr, ErrorCode, readConnectionId } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";

export function handleConnectionBind(req: RequestContext): void {
  const { d, state } = req;
  const listener = req.listener;
  // §5.4: only over TCP or TLS, and on a connection that is not a control connection (no allocation on it).
  if (!isConnection(listener) || req.allocation !== undefined || state.hasAllocationOn(listener)) return req.fail(ErrorCode.BadRequest);
  const at = d.indexOf(Attr.ConnectionId);
  const id = at < 0 ? null : readConnectionId(d.bytes, d.offsets[at]!, d.lengths[at]!);
  // §5.4: an unknown CONNECTION-ID, or one that is still connecting or bound already: 400.
  const c = id === null || id === 0 ? undefined : state.tcp.get(peerConnectionId(id));
  if (c === undefined || c.state !== "awaiting-bind") return req.fail(ErrorCode.BadRequest);
  // RFC 8656 §5 (as for every request on an allocation): the allocation's own user binds its connections.
  if (c.allocation.username !== req.auth.username) return req.fail(ErrorCode.WrongCredentials);
  state.counters.tcpConnectionBinds++;
  req.reply(req.success());
  state.tcp.bound(c, listener);
}
