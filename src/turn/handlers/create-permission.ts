/**
 * CreatePermission (RFC 8656 §9.1-9.2): every XOR-PEER-ADDRESS installed or refreshed, all or nothing.
 * Permissions per allocation are bounded; past the bound the request gets 508 (§9.2).
 */
import type { Endpoint } from "../../net/endpoint.ts";
import { Attr, ErrorCode, readXorAddress } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";

export function handleCreatePermission(req: RequestContext): void {
  const { d, state, now } = req;
  const a = req.allocation;
  if (a === undefined) return req.fail(ErrorCode.AllocationMismatch);

  const peers: Endpoint[] = [];
  for (let i = 0; i < d.count; i++) {
    if (d.types[i] !== Attr.XorPeerAddress) continue;
    const peer = readXorAddress(d.bytes, d.offsets[i]!, d.lengths[i]!);
    if (peer === null) return req.fail(ErrorCode.BadRequest);
    peers.push(peer);
  }
  if (peers.length === 0) return req.fail(ErrorCode.BadRequest);
  // RFC 8656 §10.2: a peer of a family the allocation has no relay for is 443; policy refusals are 403.
  // The policy judges the address alone: "the port portion of each attribute is ignored" (port 0 included).
  for (const peer of peers) if (a.relayFor(peer.family) === undefined) return req.fail(ErrorCode.PeerAddressFamilyMismatch);
  for (const peer of peers) if (!state.peerPolicy.allowsHost(peer.address)) return req.fail(ErrorCode.Forbidden);

  a.expireEntries(now);
  let added = 0;
  for (const peer of peers) if (!a.permissions.has(peer.hostKey)) added++;
  // RFC 8656 §9.2: a valid request the server cannot fulfil for a capacity limit gets 508.
  if (a.permissions.size + added > state.maxPermissions) return req.fail(ErrorCode.InsufficientCapacity);

  const until = now + state.permissionMs;
  for (const peer of peers) a.permit(peer.hostKey, until);
  state.reschedule(a);
  req.reply(req.success());
}
