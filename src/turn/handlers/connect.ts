/**
 * RFC 6062 TCP allocations, the client-initiated side: what an Allocate for TCP may not carry (§5.1), and
 * Connect (§5.2): a connection from the relayed address to a peer the client has a permission for,
 * answered once the engine reports the outcome (CONNECTION-ID, or 447 after a failure or 30 s).
 */
import { Attr, ErrorCode, readXorAddress } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";
import { PeerConnection } from "../tcp-allocations.ts";

/**
 * RFC 6062 §5.1: why an Allocate with REQUESTED-TRANSPORT TCP is refused, or 0. Refused with 442 where
 * TCP relays are off (coturn --no-tcp-relay); with 400 over UDP or DTLS (the client connection must be
 * TCP or TLS, as coturn answers too) and with EVEN-PORT, RESERVATION-TOKEN or DONT-FRAGMENT, which only mean
 * something for UDP; a dual allocation is not offered for TCP.
 */
export function tcpAllocateRefusal(req: RequestContext): number {
  const { d, state } = req;
  if (state.tcp.io === undefined) return ErrorCode.UnsupportedTransportProtocol;
  if (!state.isStream(req.listener)) return ErrorCode.BadRequest;
  if (d.indexOf(Attr.EvenPort) >= 0 || d.indexOf(Attr.ReservationToken) >= 0 || d.indexOf(Attr.DontFragment) >= 0) return ErrorCode.BadRequest;
  if (d.indexOf(Attr.AdditionalAddressFamily) >= 0) return ErrorCode.BadRequest;
  return 0;
}

/** RFC 6062 §5.2: Connect. */
export function handleConnect(req: RequestContext): void {
  const { d, state, now } = req;
  const a = req.allocation;
  if (a === undefined) return req.fail(ErrorCode.AllocationMismatch);
  // Only a TCP allocation has connections to open (§5.2 is "for a TCP allocation").
  if (!a.tcp) return req.fail(ErrorCode.BadRequest);
  const peerAt = d.indexOf(Attr.XorPeerAddress);
  const peer = peerAt < 0 ? null : readXorAddress(d.bytes, d.offsets[peerAt]!, d.lengths[peerAt]!);
  if (peer === null) return req.fail(ErrorCode.BadRequest);
  const relay = a.relayFor(peer.family);
  if (relay === undefined) return req.fail(ErrorCode.PeerAddressFamilyMismatch);
  // §5.2: a connection to that peer from this relayed address exists already: 446.
  const tcp = state.tcp;
  if (tcp.toPeer(a, peer) !== undefined) return req.fail(ErrorCode.ConnectionAlreadyExists);
  // §5.2: the peer must have a permission (RFC 8656 §9), and the server's policy must allow it.
  if (!state.peerPolicy.allowsHost(peer.address) || !a.hasPermission(peer.hostKey, now)) return req.fail(ErrorCode.Forbidden);
  // As many connections as permissions at most: each one holds two sockets.
  if (tcp.countOf(a) >= state.maxPermissions) return req.fail(ErrorCode.InsufficientCapacity);
  const id = tcp.io!.connect(relay, peer);
  if (id === 0) {
    state.counters.tcpConnectFailures++;
    return req.fail(ErrorCode.ConnectionTimeoutOrFailure);
  }
  const c = new PeerConnection(id, a, peer, now + tcp.timeoutMs);
  c.state = "connecting";
  c.pending = {
    listener: req.listener,
    client: req.client,
    header: d.bytes.slice(0, 20),
    integrity: req.auth.integrity,
    fingerprint: req.fingerprint,
  };
  tcp.add(c);
}
