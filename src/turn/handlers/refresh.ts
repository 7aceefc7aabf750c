/** Refresh (RFC 8656 §7.4-7.5): new lifetime, or deletion with LIFETIME 0. */
import type { Family } from "../../net/endpoint.ts";
import { Attr, ErrorCode, readAddressFamily, readLifetime, writeLifetime } from "../../stun/index.ts";
import type { RequestContext } from "../request.ts";

export function handleRefresh(req: RequestContext): void {
  const { d, state, now } = req;
  const m = d.bytes;
  const a = req.allocation;
  // RFC 8656 §7.5: no allocation on this 5-tuple (a retransmitted delete also lands here; clients treat 437 as done).
  if (a === undefined) return req.fail(ErrorCode.AllocationMismatch);

  let requested: number | undefined;
  const lifetimeAt = d.indexOf(Attr.Lifetime);
  if (lifetimeAt >= 0) {
    const l = readLifetime(m, d.offsets[lifetimeAt]!, d.lengths[lifetimeAt]!);
    if (l === null) return req.fail(ErrorCode.BadRequest);
    requested = l;
  }

  // RFC 8656 §7.5: REQUESTED-ADDRESS-FAMILY names which relay of a dual allocation is meant.
  let family: Family | undefined;
  const familyAt = d.indexOf(Attr.RequestedAddressFamily);
  if (familyAt >= 0) {
    const f = readAddressFamily(m, d.offsets[familyAt]!, d.lengths[familyAt]!);
    if (f === null) return req.fail(ErrorCode.BadRequest);
    if (f === 0 || a.relayFor(f) === undefined) return req.fail(ErrorCode.PeerAddressFamilyMismatch);
    family = f;
  }

  if (requested === 0) {
    const w = req.success();
    writeLifetime(w, 0);
    const other: Family | undefined = family === 4 ? 6 : family === 6 ? 4 : undefined;
    if (family !== undefined && other !== undefined && a.relayFor(other) !== undefined) {
      state.closeRelay(a, family); // only that family goes; the allocation lives on
      req.reply(w);
    } else {
      // Delete first, answer second: closing the relay flushes the engine's queued datagrams, and the
      // answer must not reach the client before the allocation's quota, bandwidth and port are given back
      // (its next Allocate, on another engine, would find them still taken).
      state.remove(a);
      req.reply(w);
    }
    return;
  }

  const granted = state.grantedLifetime(requested);
  a.expiresAt = now + granted * 1000;
  state.reschedule(a);
  const w = req.success();
  writeLifetime(w, granted);
  req.reply(w);
}
