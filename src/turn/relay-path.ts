/**
 * The data path: ChannelData and Send indications from clients (RFC 8656 §12.5, §10.2) and peer
 * datagrams towards clients (§10.3, §12.6). Called for every relayed packet, so it allocates nothing it
 * can avoid: numeric endpoint keys, buffer + range instead of views, peer data framed as ChannelData in
 * the room the engine leaves before it (else in the buffer of one reused StunWriter, which the sink
 * copies before returning), Uint8Array indexing, no closures or strings.
 */
import { ipv4Endpoint, type Endpoint } from "../net/endpoint.ts";
import {
  Attr, CHANNEL_DATA_HEADER, StunClass, StunMethod, StunWriter, readXorAddress, readXorIpv4, readXorPort,
  writeChannelDataHeader, writeDataRange, writeXorAddress, type StunDecoder,
} from "../stun/index.ts";
import type { Millis, RelayId } from "./api.ts";
import type { Allocation } from "./allocation.ts";
import type { ServerState } from "./state.ts";

/** Largest STUN body (16-bit length) minus the Data indication's own attributes. */
const MAX_DATA_INDICATION_PAYLOAD = 0xffff - 24 - 4 - 3;

export class RelayPath {
  /**
   * Restarted for every Data indication, and its buffer holds ChannelData that came without room before
   * it: sized for the largest of either, so it never grows.
   */
  private readonly out = new StunWriter(StunMethod.Data, StunClass.Indication, new Uint8Array(12), 0x10000 + 64);
  private readonly transactionId = new Uint8Array(12);
  /** xorshift128 state for Data indication transaction ids: unpredictability is not needed there. */
  private readonly rng = new Uint32Array(4);

  constructor(private readonly state: ServerState) {
    crypto.getRandomValues(this.rng);
    if ((this.rng[0]! | this.rng[1]! | this.rng[2]! | this.rng[3]!) === 0) this.rng[0] = 1;
  }

  /** RFC 8656 §12.5: ChannelData from the client, relayed to the bound peer if a permission exists. */
  channelDataFromClient(a: Allocation, data: Uint8Array, offset: number, channelNumber: number, now: Millis): void {
    const s = this.state;
    const channel = a.channelsByNumber.get(channelNumber);
    if (channel === undefined || channel.expiresAt <= now || !a.hasPermission(channel.peer.hostKey, now)) {
      s.counters.dropped++;
      return;
    }
    const length = (data[offset + 2]! << 8) | data[offset + 3]!;
    if (a.bytesPerSecond !== 0 && !a.takeToPeer(length, now)) {
      s.counters.dropped++; // coturn --max-bps
      return;
    }
    s.counters.clientToPeerPackets++;
    s.counters.clientToPeerBytes += length;
    a.packetsToPeer++;
    a.bytesToPeer += length;
    // ChannelData clears DF (coturn); padding beyond `length` is not relayed.
    s.sink.relayToPeer(channel.relay, channel.peer, data, offset + 4, length, false);
  }

  /** RFC 8656 §10.2: a Send indication; anything wrong with it means a silent discard. */
  sendIndication(a: Allocation, d: StunDecoder, now: Millis): void {
    const s = this.state;
    const peerAt = d.indexOf(Attr.XorPeerAddress);
    const dataAt = d.indexOf(Attr.Data);
    // RFC 8489 §6.3.2: indications with unknown comprehension-required attributes are dropped.
    if (peerAt < 0 || dataAt < 0 || d.unknownCount !== 0) {
      s.counters.dropped++;
      return;
    }
    const m = d.bytes;
    const at = d.offsets[peerAt]!;
    const len = d.lengths[peerAt]!;
    let peer: Endpoint | undefined;
    const ip = readXorIpv4(m, at, len);
    if (ip >= 0) {
      // IPv4: looked up by number, so a known peer costs no Endpoint.
      const port = readXorPort(m, at);
      if (!a.hasPermission(ip, now)) {
        s.counters.dropped++;
        return;
      }
      peer = a.sendPeers.get(ip * 65536 + port) ?? this.admitSendPeer(a, ipv4Endpoint(ip, port));
    } else {
      const decoded = readXorAddress(m, at, len);
      if (decoded === null || !a.hasPermission(decoded.hostKey, now)) {
        s.counters.dropped++;
        return;
      }
      peer = a.sendPeers.get(decoded.key) ?? this.admitSendPeer(a, decoded);
    }
    if (peer === undefined) {
      s.counters.dropped++;
      return;
    }
    const relay = peer.family === 4 ? a.relay4 : a.relay6;
    if (relay === undefined) {
      s.counters.dropped++;
      return;
    }
    const dataOffset = d.offsets[dataAt]!;
    const dataLength = d.lengths[dataAt]!;
    if (a.bytesPerSecond !== 0 && !a.takeToPeer(dataLength, now)) {
      s.counters.dropped++; // coturn --max-bps
      return;
    }
    s.counters.clientToPeerPackets++;
    s.counters.clientToPeerBytes += dataLength;
    a.packetsToPeer++;
    a.bytesToPeer += dataLength;
    s.sink.relayToPeer(relay, peer, m, dataOffset, dataLength, d.indexOf(Attr.DontFragment) >= 0);
  }

  /**
   * RFC 8656 §11.2: the server "MAY impose restrictions on the IP address and port values" of a Send
   * indication and silently discards one it refuses: port 0, and this host's own addresses outside the relay
   * range, although the permission (by address only) exists. Judged once per peer: the cache holds only
   * admitted ones.
   */
  private admitSendPeer(a: Allocation, peer: Endpoint): Endpoint | undefined {
    return this.state.peerPolicy.isAllowed(peer) ? a.sendPeer(peer) : undefined;
  }

  /** RFC 8656 §10.3 / §12.6: a datagram from a peer, to the client as ChannelData or a Data indication. */
  peerDatagram(relayId: RelayId, peer: Endpoint, data: Uint8Array, offset: number, payloadLength: number, now: Millis): void {
    const s = this.state;
    const a = s.byRelay.get(relayId);
    if (a === undefined || !a.hasPermission(peer.hostKey, now)) {
      s.counters.dropped++;
      return;
    }
    if (a.bytesPerSecond !== 0 && !a.takeToClient(payloadLength, now)) {
      s.counters.dropped++; // coturn --max-bps
      return;
    }
    const channel = a.channelsByPeer.get(peer.key);
    let out: Uint8Array = this.out.buffer;
    let start = 0;
    let total: number;
    if (channel !== undefined && channel.expiresAt > now) {
      if (payloadLength > 0xffff) {
        s.counters.dropped++;
        return;
      }
      if (offset >= CHANNEL_DATA_HEADER) {
        out = data; // the header goes in the room before the payload: no copy
        start = offset - CHANNEL_DATA_HEADER;
      } else {
        out.set(data.subarray(offset, offset + payloadLength), CHANNEL_DATA_HEADER);
      }
      writeChannelDataHeader(out, start, channel.number, payloadLength);
      total = CHANNEL_DATA_HEADER + payloadLength; // no padding over UDP (RFC 8656 §12.4)
    } else {
      if (payloadLength > MAX_DATA_INDICATION_PAYLOAD) {
        s.counters.dropped++;
        return;
      }
      total = this.writeDataIndication(peer, data, offset, payloadLength);
    }
    s.counters.peerToClientPackets++;
    s.counters.peerToClientBytes += payloadLength;
    a.packetsToClient++;
    a.bytesToClient += payloadLength;
    s.counters.clientPacketsOut++;
    s.counters.clientBytesOut += total;
    s.sink.relayToClient(a.listener, a.client, out, start, total);
  }

  /** Data indication (RFC 8656 §10.3): XOR-PEER-ADDRESS + DATA, written into `out`. Returns its length. */
  private writeDataIndication(peer: Endpoint, data: Uint8Array, offset: number, length: number): number {
    const w = this.out;
    this.randomTransactionId(this.transactionId);
    w.restart(StunMethod.Data, StunClass.Indication, this.transactionId);
    writeXorAddress(w, Attr.XorPeerAddress, peer);
    writeDataRange(w, data, offset, length);
    return w.finishInPlace();
  }

  private randomTransactionId(out: Uint8Array): void {
    const r = this.rng;
    for (let w = 0; w < 3; w++) {
      let t = r[3]!;
      const x = r[0]!;
      r[3] = r[2]!;
      r[2] = r[1]!;
      r[1] = x;
      t ^= t << 11;
      t ^= t >>> 8;
      const v = (t ^ x ^ (x >>> 19)) >>> 0;
      r[0] = v;
      const o = w * 4;
      out[o] = v >>> 24;
      out[o + 1] = (v >>> 16) & 0xff;
      out[o + 2] = (v >>> 8) & 0xff;
      out[o + 3] = v & 0xff;
    }
  }
}
