/**
 * ChannelBind (RFC 8656 §11.1-11.2): bind or refresh a channel, and install/refresh the peer's permission.
 * Channels and permissions per allocation are bounded; past the bound a new one gets 508 (§11.2).
 */
import { Attr, ErrorCode, isValidChannelNumber, readChannelNumber, readXorAddress } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";

export function handleChannelBind(req: RequestContext): void {
  const { d, state, now } = req;
  const m = d.bytes;
  const a = req.allocation;
  if (a === undefined) return req.fail(ErrorCode.AllocationMismatch);
  // RFC 6062 §4: a TCP allocation relays over connections, never over channels.
  if (a.tcp) return req.fail(ErrorCode.BadRequest);

  const channelAt = d.indexOf(Attr.ChannelNumber);
  const peerAt = d.indexOf(Attr.XorPeerAddress);
  if (channelAt < 0 || peerAt < 0) return req.fail(ErrorCode.BadRequest);
  const number = readChannelNumber(m, d.offsets[channelAt]!, d.lengths[channelAt]!);
  // RFC 8656 §11.2 (or RFC 5766 §11.2's wider range, see TurnServerOptions.channelRange).
  if (number === null || !isValidChannelNumber(number, state.maxChannel)) return req.fail(ErrorCode.BadRequest);
  const peer = readXorAddress(m, d.offsets[peerAt]!, d.lengths[peerAt]!);
  if (peer === null) return req.fail(ErrorCode.BadRequest);
  const relay = a.relayFor(peer.family);
  if (relay === undefined) return req.fail(ErrorCode.PeerAddressFamilyMismatch);
  // RFC 8656 §12.2: the server may restrict "the IP address and port values" with 403 (port 0 among them).
  if (!state.peerPolicy.isAllowed(peer)) return req.fail(ErrorCode.Forbidden);

  a.expireEntries(now);
  // RFC 8656 §11.2: a channel belongs to one peer and a peer to one channel.
  const byNumber = a.channelsByNumber.get(number);
  if (byNumber !== undefined && byNumber.peer.key !== peer.key) return req.fail(ErrorCode.BadRequest);
  const byPeer = a.channelsByPeer.get(peer.key);
  if (byPeer !== undefined && byPeer.number !== number) return req.fail(ErrorCode.BadRequest);
  // RFC 8656 §11.2: a valid request the server cannot fulfil for a capacity limit gets 508.
  if (!a.permissions.has(peer.hostKey) && a.permissions.size >= state.maxPermissions) return req.fail(ErrorCode.InsufficientCapacity);
  if (byNumber === undefined && a.channelsByNumber.size >= state.maxChannels) return req.fail(ErrorCode.InsufficientCapacity);

  if (byNumber !== undefined) a.refreshChannel(byNumber, now + state.channelMs);
  else a.bindChannel({ number, peer, relay, expiresAt: now + state.channelMs });
  a.permit(peer.hostKey, now + state.permissionMs);
  state.reschedule(a);
  req.reply(req.success());
}
