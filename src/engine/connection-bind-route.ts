/**
 * RFC 6062 §5.4 across engines: a ConnectionBind whose CONNECTION-ID another engine minted
 * (./tcp-relay-ids.ts) is not handled here: its connection, with the request and whatever followed it,
 * goes to that engine (./stream-handoff.ts), which answers it and pipes the connection to its peer.
 */
import type { ConnectionId } from "../turn/api.ts";
import { engineOfConnectionId } from "./tcp-relay-ids.ts";
import { StreamHandoff, type HandoffShared } from "./stream-handoff.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import { SLOT } from "./counters.ts";

/** ConnectionBind's message type (RFC 6062 §6.1: method 0x00B, class request) and CONNECTION-ID's attribute type. */
const CONNECTION_BIND_REQUEST = 0x000b;
const CONNECTION_ID = 0x002a;

/** The CONNECTION-ID of a ConnectionBind request, or -1 when `frame` is anything else. */
export function connectionBindTarget(frame: Uint8Array): number {
  if (frame.length < 20 || ((frame[0]! << 8) | frame[1]!) !== CONNECTION_BIND_REQUEST) return -1;
  for (let at = 20; at + 4 <= frame.length;) {
    const type = (frame[at]! << 8) | frame[at + 1]!;
    const length = (frame[at + 2]! << 8) | frame[at + 3]!;
    if (type === CONNECTION_ID) {
      if (length !== 4 || at + 8 > frame.length) return -1;
      return ((frame[at + 4]! << 24) | (frame[at + 5]! << 16) | (frame[at + 6]! << 8) | frame[at + 7]!) >>> 0;
    }
    at += 4 + ((length + 3) & ~3);
  }
  return -1;
}

export class ConnectionBindRouter {
  private readonly handoff: StreamHandoff;
  /** Set while a connection that could not be posted is taken back: it is then answered here (400). */
  private keeping = false;

  constructor(
    shared: HandoffShared,
    private readonly index: number,
    private readonly tcp: TcpTransport,
    wakeFd: number,
    /** The engine's counter block (tcpRelayHandoffs). */
    private readonly counters: Float64Array,
  ) {
    this.handoff = new StreamHandoff(shared, index);
    this.handoff.publish(wakeFd);
  }

  /** True when `frame` (on `connection`) was a ConnectionBind for another engine and the connection went there. */
  route(connection: ConnectionId, frame: Uint8Array, now: number): boolean {
    if (this.keeping) return false;
    const id = connectionBindTarget(frame);
    if (id < 0) return false;
    const owner = engineOfConnectionId(id);
    if (owner === this.index) return false;
    const detached = this.tcp.detach(connection);
    if (detached === undefined) return false;
    const bytes = new Uint8Array(frame.length + detached.rest.length);
    bytes.set(frame);
    bytes.set(detached.rest, frame.length);
    const { rest: _, ...moving } = detached;
    const handed = { ...moving, bytes };
    if (this.handoff.post(owner, handed)) {
      this.counters[SLOT.tcpRelayHandoffs]!++;
      return true;
    }
    // No such engine, or its mailbox is full: served here after all, where the id is unknown (400).
    this.keeping = true;
    try {
      this.tcp.adopt(handed, now);
    } finally {
      this.keeping = false;
    }
    return true;
  }

  /** Takes in the connections other engines posted here. */
  receive(now: number): void {
    this.handoff.receive((c) => this.tcp.adopt(c, now));
  }
}
