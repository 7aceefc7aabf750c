/**
 * The data path: ChannelData and Send indications from clients (RFC 8656 §12.5, §10.2) and peer
 * datagrams towards clients (§10.3, §12.6). Called for every relayed packet, so it allocates nothing it
 * can avoid: numeric endpoint keys, buffer + range instead of views, peer data framed as ChannelData in
 * the room the engine leaves before it (else in a preallocated output buffer that the sink copies before
 * returning), Uint8Array indexing, no closures or strings.
 */
import { ipv4Endpoint, type Endpoint } from "../net/endpoint.ts";
import { Attr, readXorAddress, type StunDecoder } from "../stun/index.ts";
import type { Millis } from "./api.ts";
import type { Allocation } from "./allocation.ts";
import type { ServerState } from "./state.ts";

/** Largest STUN body (16-bit length) minus the Data indication's own attributes. */
const MAX_DATA_INDICATION_PAYLOAD = 0xffff - 24 - 4 - 3;

export class RelayPath {
  private readonly out = new Uint8Array(0x10000 + 64);
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
    if (len === 8 && m[at + 1] === 0x01) {
      const port = ((m[at + 2]! << 8) | m[at + 3]!) ^ 0x2112;
      const ip = (((m[at + 4]! << 24) | (m[at + 5]! << 16) | (m[at + 6]! << 8) | m[at + 7]!) ^ 0x2112a442) >>> 0;
      if (!a.hasPermission(ip, now)) {
        s.counters.dropped++;
        return;
      }
      peer = a.sendPeers.get(ip * 65536 + port) ?? a.sendPeer(ipv4Endpoint(ip, port));
    } else {
      const decoded = readXorAddress(m, at, len);
      if (decoded === null || !a.hasPermission(decoded.hostKey, now)) {
        s.counters.dropped++;
        return;
      }
      peer = a.sendPeer(decoded);
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
    s.sink.relayToPeer(relay, peer, m, dataOffset, dataLength, d.indexOf(Attr.DontFragment) >= 0);
  }

  /** RFC 8656 §10.3 / §12.6: a datagram from a peer, to the client as ChannelData or a Data indication. */
  peerDatagram(relayId: number, peer: Endpoint, data: Uint8Array, offset: number, payloadLength: number, now: Millis): void {
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
    let out: Uint8Array = this.out;
    let start = 0;
    let total: number;
    if (channel !== undefined && channel.expiresAt > now) {
      if (payloadLength > 0xffff) {
        s.counters.dropped++;
        return;
      }
      if (offset >= 4) {
        out = data; // the header goes in the room before the payload: no copy
        start = offset - 4;
      } else {
        out.set(data.subarray(offset, offset + payloadLength), 4);
      }
      out[start] = channel.number >> 8;
      out[start + 1] = channel.number & 0xff;
      out[start + 2] = payloadLength >> 8;
      out[start + 3] = payloadLength & 0xff;
      total = 4 + payloadLength; // no padding over UDP (RFC 8656 §12.4)
    } else {
      if (payloadLength > MAX_DATA_INDICATION_PAYLOAD) {
        s.counters.dropped++;
        return;
      }
      total = this.writeDataIndication(peer, data, offset, payloadLength);
    }
    s.counters.peerToClientPackets++;
    s.counters.peerToClientBytes += payloadLength;
    s.counters.clientPacketsOut++;
    s.counters.clientBytesOut += total;
    s.sink.relayToClient(a.listener, a.client, out, start, total);
  }

  /** Data indication (RFC 8656 §10.3): XOR-PEER-ADDRESS + DATA, written into `out`. Returns its length. */
  private writeDataIndication(peer: Endpoint, data: Uint8Array, offset: number, length: number): number {
    const out = this.out;
    out[0] = 0x00;
    out[1] = 0x17; // Data indication: method 0x007, class indication
    out[4] = 0x21;
    out[5] = 0x12;
    out[6] = 0xa4;
    out[7] = 0x42;
    this.randomTransactionId(out);
    const v4 = peer.family === 4;
    const addressLength = v4 ? 4 : 16;
    out[20] = 0x00;
    out[21] = 0x12; // XOR-PEER-ADDRESS
    out[22] = 0;
    out[23] = 4 + addressLength;
    out[24] = 0;
    out[25] = v4 ? 0x01 : 0x02;
    const port = peer.port ^ 0x2112;
    out[26] = port >> 8;
    out[27] = port & 0xff;
    const address = peer.address;
    for (let i = 0; i < addressLength; i++) out[28 + i] = address[i]! ^ out[4 + i]!;
    let pos = 28 + addressLength;
    out[pos] = 0x00;
    out[pos + 1] = 0x13; // DATA
    out[pos + 2] = length >> 8;
    out[pos + 3] = length & 0xff;
    out.set(data.subarray(offset, offset + length), pos + 4);
    pos += 4 + length;
    while ((pos & 3) !== 0) out[pos++] = 0;
    const body = pos - 20;
    out[2] = body >> 8;
    out[3] = body & 0xff;
    return pos;
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
      const o = 8 + w * 4;
      out[o] = v >>> 24;
      out[o + 1] = (v >>> 16) & 0xff;
      out[o + 2] = (v >>> 8) & 0xff;
      out[o + 3] = v & 0xff;
    }
  }
}
