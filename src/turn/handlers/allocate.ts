/** Allocate (RFC 8656 §7.1-7.3), including dual allocation (§7.2 with ADDITIONAL-ADDRESS-FAMILY) and EVEN-PORT reservations. */
import type { Family } from "../../net/endpoint.ts";
import {
  Attr, ErrorCode, TRANSPORT_TCP, TRANSPORT_UDP, readAddressFamily, readEvenPort, readLifetime, readRequestedTransport,
  readReservationToken, writeAddressErrorCode, writeLifetime, writeReservationToken, writeXorAddress,
} from "../../stun/index.ts";
import type { RelayHandle, RelayOpenRequest } from "../api.ts";
import { Allocation } from "../allocation.ts";
import type { RequestContext } from "../request.ts";
import { tcpAllocateRefusal } from "./connect.ts";

export function handleAllocate(req: RequestContext): void {
  const { d, state, now } = req;
  const m = d.bytes;
  // RFC 8656 §7.2 step 2: one allocation per 5-tuple (retransmissions were answered from the cache).
  if (req.allocation !== undefined) return req.fail(ErrorCode.AllocationMismatch);

  // Step 3: REQUESTED-TRANSPORT is mandatory: UDP, or TCP (RFC 6062 §5.1).
  const transportAt = d.indexOf(Attr.RequestedTransport);
  if (transportAt < 0) return req.fail(ErrorCode.BadRequest);
  const transport = readRequestedTransport(m, d.offsets[transportAt]!, d.lengths[transportAt]!);
  if (transport === null) return req.fail(ErrorCode.BadRequest);
  const tcp = transport === TRANSPORT_TCP;
  const tcpRefused = tcp ? tcpAllocateRefusal(req) : 0;
  if (tcpRefused !== 0) return req.fail(tcpRefused);
  // coturn --no-udp-relay refuses UDP relays the same way (--no-tcp-relay: ./connect.ts).
  if (!tcp && (transport !== TRANSPORT_UDP || state.noUdpRelay)) return req.fail(ErrorCode.UnsupportedTransportProtocol);

  // Step 4: DONT-FRAGMENT is supported (the engine sets DF), so it only needs to be well formed.
  const dontFragmentAt = d.indexOf(Attr.DontFragment);
  if (dontFragmentAt >= 0 && d.lengths[dontFragmentAt] !== 0) return req.fail(ErrorCode.BadRequest);

  const tokenAt = d.indexOf(Attr.ReservationToken);
  const evenPortAt = d.indexOf(Attr.EvenPort);
  const requestedFamilyAt = d.indexOf(Attr.RequestedAddressFamily);
  const additionalFamilyAt = d.indexOf(Attr.AdditionalAddressFamily);
  // Steps 5-6: a reservation token names one specific port; it cannot be combined with a port or
  // family choice, and the two family attributes exclude each other.
  if (tokenAt >= 0 && (evenPortAt >= 0 || requestedFamilyAt >= 0 || additionalFamilyAt >= 0)) return req.fail(ErrorCode.BadRequest);
  if (requestedFamilyAt >= 0 && additionalFamilyAt >= 0) return req.fail(ErrorCode.BadRequest);

  // RFC 8656 §7.2 step 7 leaves the default to the server: IPv4, IPv6, or the client's own family (coturn -A).
  let family: Family = state.defaultFamily === "ipv6" ? 6 : state.defaultFamily === "keep" ? req.client.family : 4;
  if (requestedFamilyAt >= 0) {
    const f = readAddressFamily(m, d.offsets[requestedFamilyAt]!, d.lengths[requestedFamilyAt]!);
    if (f === null) return req.fail(ErrorCode.BadRequest);
    if (f === 0) return req.fail(ErrorCode.AddressFamilyNotSupported);
    family = f;
  }
  let dual = false;
  if (additionalFamilyAt >= 0) {
    // Step 9: ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6 (on top of the default IPv4).
    const f = readAddressFamily(m, d.offsets[additionalFamilyAt]!, d.lengths[additionalFamilyAt]!);
    if (f !== 6) return req.fail(ErrorCode.BadRequest);
    dual = true;
    family = 4; // the primary relay of a dual allocation is IPv4 whatever the server's default
  }

  // Step 3 or 4: the port held under a token (in the family it was reserved with, which the allocator
  // knows even for another engine's token), or a new one.
  let open: RelayOpenRequest;
  if (tokenAt >= 0) {
    const token = readReservationToken(m, d.offsets[tokenAt]!, d.lengths[tokenAt]!);
    if (token === null) return req.fail(ErrorCode.BadRequest);
    open = { kind: "token", reservationToken: token };
  } else {
    let evenPort = false;
    let reserveNext = false;
    if (evenPortAt >= 0) {
      const e = readEvenPort(m, d.offsets[evenPortAt]!, d.lengths[evenPortAt]!);
      if (e === null) return req.fail(ErrorCode.BadRequest);
      evenPort = true;
      reserveNext = e.reserveNext;
    }
    open = tcp ? { kind: "fresh", family, evenPort, reserveNext, transport: "tcp" } : { kind: "fresh", family, evenPort, reserveNext };
  }
  const redeemed = open.kind === "token" ? open.reservationToken : undefined;

  let lifetime: number | undefined;
  const lifetimeAt = d.indexOf(Attr.Lifetime);
  if (lifetimeAt >= 0) {
    const l = readLifetime(m, d.offsets[lifetimeAt]!, d.lengths[lifetimeAt]!);
    if (l === null) return req.fail(ErrorCode.BadRequest);
    lifetime = l;
  }

  // Step 8: quota (486), judged on the authenticated username. A reserved port is held for 30 s whatever
  // becomes of this allocation, so an R bit needs a unit for the reservation too, counted until it is
  // redeemed or expires; an Allocate that redeems a token takes over the reservation's unit.
  const username = req.auth.username;
  const quota = state.quota;
  const countReservation = open.kind === "fresh" && open.reserveNext && quota?.holdReservation !== undefined;
  const redeems = redeemed !== undefined && quota?.acquireReserved !== undefined;
  let units = 0;
  // coturn --max-bps / --bps-capacity: each session reserves its bandwidth from the server's capacity;
  // when none is left the Allocate gets 486 with coturn's reason phrase (allocate_bps in coturn). Checked
  // after the quota, except when redeeming: then first, so a refusal leaves the reservation's unit alone.
  let bytesPerSecond = state.maxBytesPerSecond;
  const reserveBandwidth = bytesPerSecond > 0 && quota?.reserveBandwidth !== undefined;
  let bandwidthHeld = false;
  const giveBack = () => {
    for (; units > 0; units--) quota!.release(username, req.client);
    if (bandwidthHeld) quota!.releaseBandwidth?.(bytesPerSecond);
  };
  const bandwidthRefused = () => {
    if (!reserveBandwidth) return false;
    bytesPerSecond = quota!.reserveBandwidth!(bytesPerSecond);
    bandwidthHeld = bytesPerSecond > 0;
    if (bandwidthHeld) return false;
    giveBack();
    req.fail(ErrorCode.AllocationQuotaReached, undefined, "Allocation Bandwidth Quota Reached");
    return true;
  };
  if (redeems && bandwidthRefused()) return;
  if (quota !== undefined) {
    let admitted = redeems ? quota.acquireReserved!(username, req.client, redeemed!) : quota.acquire(username, req.client);
    if (admitted) units++;
    if (admitted && countReservation) {
      admitted = quota.acquire(username, req.client);
      if (admitted) units++;
    }
    if (!admitted) {
      giveBack();
      return req.fail(ErrorCode.AllocationQuotaReached);
    }
  }
  if (!redeems && bandwidthRefused()) return;

  const primary = state.relays.open(open, now);
  if (!primary.ok) {
    giveBack();
    return req.fail(primary.code);
  }
  if (redeemed !== undefined) state.reservations.forget(redeemed);
  const token = primary.reservationToken;
  if (countReservation) {
    // The reservation's unit goes to its token, or back when no port was reserved after all; a quota
    // with no room to record one more refuses the Allocate (486) and the port it held is let go.
    if (token === undefined) {
      quota!.release(username, req.client);
      units--;
    } else if (!quota!.holdReservation!(username, req.client, token)) {
      state.relays.releaseReservation?.(token);
      state.relays.close(primary.relay);
      giveBack();
      return req.fail(ErrorCode.AllocationQuotaReached);
    }
  }

  let additionalError = 0;
  let secondary: RelayHandle | undefined;
  if (dual) {
    const r = state.relays.open({ kind: "fresh", family: 6, evenPort: false, reserveNext: false }, now);
    if (r.ok) secondary = r.relay;
    else additionalError = r.code;
  }

  const granted = state.grantedLifetime(lifetime);
  const a = new Allocation(req.listener, req.client, username, now + granted * 1000);
  a.startedAt = now;
  a.tcp = tcp;
  a.quotaHeld = quota !== undefined;
  a.bandwidthReserved = bandwidthHeld;
  if (bytesPerSecond > 0) a.limitBandwidth(bytesPerSecond, now);
  // The relay's own address is the truth: a reservation made on another engine carries its family in
  // the token, which this core never saw, so the allocator may open another family than asked.
  family = primary.relay.address.family;
  if (family === 4) a.relay4 = primary.relay;
  else a.relay6 = primary.relay;
  if (secondary !== undefined) a.relay6 = secondary;
  state.add(a);
  if (token !== undefined) state.reservations.hold(token, now);

  // RFC 8656 §7.3 (what the client expects): relayed address(es), lifetime, token, mapped address.
  const w = req.success();
  writeXorAddress(w, Attr.XorRelayedAddress, primary.relay.address);
  if (secondary !== undefined) writeXorAddress(w, Attr.XorRelayedAddress, secondary.address);
  writeLifetime(w, granted);
  if (token !== undefined) writeReservationToken(w, token);
  writeXorAddress(w, Attr.XorMappedAddress, req.client);
  // RFC 8656 §7.2: the IPv6 half of a dual allocation failed, the IPv4 half stands.
  if (additionalError !== 0) writeAddressErrorCode(w, 6, additionalError);
  req.reply(w);
}
