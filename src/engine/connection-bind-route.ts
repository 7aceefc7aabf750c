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

/** Whether bytes[offset, offset + length) is at least a STUN header whose type is a ConnectionBind request. */
function isConnectionBindRequest(bytes: Uint8Array, offset: number, length: number): boolean {
  return length >= 20 && ((bytes[offset]! << 8) | bytes[offset + 1]!) === CONNECTION_BIND_REQUEST;
}

/** The CONNECTION-ID of a ConnectionBind request in bytes[offset, offset + length), or -1 when it is anything else. */
export function connectionBindTarget(bytes: Uint8Array, offset = 0, length = bytes.length - offset): number {
  const end = offset + length;
  if (!isConnectionBindRequest(bytes, offset, length)) return -1;
  for (let at = offset + 20; at + 4 <= end;) {
    const type = (bytes[at]! << 8) | bytes[at + 1]!;
    const attributeLength = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    if (type === CONNECTION_ID) {
      if (attributeLength !== 4 || at + 8 > end) return -1;
      return ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) | bytes[at + 7]!) >>> 0;
    }
    at += 4 + ((attributeLength + 3) & ~3);
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

  /**
   * True when the frame bytes[offset, offset + length) (on `connection`) was a ConnectionBind for another
   * engine and the connection went there.
   */
  route(connection: ConnectionId, frameBytes: Uint8Array, offset: number, length: number, now: number): boolean {
    // Called for every frame: all but a ConnectionBind request (ChannelData above all) leave at their first
    // two bytes, so that what the JIT compiles into each frame's path is this line, not the handover.
    if (this.keeping || !isConnectionBindRequest(frameBytes, offset, length)) return false;
    return this.handOver(connection, frameBytes, offset, length, now);
  }

  /** route() of a ConnectionBind request: its connection goes to the engine that minted its CONNECTION-ID, if another. */
  private handOver(connection: ConnectionId, frameBytes: Uint8Array, offset: number, length: number, now: number): boolean {
    const id = connectionBindTarget(frameBytes, offset, length);
    if (id < 0) return false;
    const owner = engineOfConnectionId(id);
    if (owner === this.index) return false;
    const detached = this.tcp.detach(connection);
    if (detached === undefined) return false;
    const bytes = new Uint8Array(length + detached.rest.length);
    bytes.set(frameBytes.subarray(offset, offset + length));
    bytes.set(detached.rest, length);
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
