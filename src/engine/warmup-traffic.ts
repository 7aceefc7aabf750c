/**
 * The synthetic clients and peers of the start-up warm-up (warmup.ts), on loopback through ffi: each
 * client allocates the long-term way (the 401 round first, RFC 8656 §7.2 with RFC 8489 §9.2), asks for
 * a permission (§9) and a channel (§12) towards one peer, then sends what real calls send: single
 * ChannelData datagrams, bursts of equal ones and video frames (one size, the last shorter; as one
 * UDP_SEGMENT message where the kernel takes it, which loopback delivers to a UDP_GRO socket as one
 * buffer), and Send indications (§11) towards a second peer that has a permission but no channel, so
 * its echo comes back as Data indications. The peers echo everything to where it came from (the relay
 * sockets), the same way. Refresh (§8) now and then, and LIFETIME 0 at the end.
 *
 * Every exchange is driven by `turn()`: one turn of the throwaway engine's loop, so nothing here waits
 * on a clock of its own.
 */
import {
  RecvBatch, SOCKADDR_SLOT, SendBatch, UdpCapabilities, UdpSocketState, boundPort, flushSendBatch, libc, newStats,
  receiveBatch,
} from "../../ffi/index.ts";
import { endpointFromBytes, type Endpoint } from "../net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, encodeChannelData, getAttribute, readErrorCode, readText, writeChannelNumber,
  writeData, writeLifetime, writeMessageIntegrity, writeRequestedTransport, writeText, writeXorAddress,
} from "../stun/index.ts";
import { md5Key } from "../turn/credentials.ts";

const LOOPBACK = new Uint8Array([127, 0, 0, 1]);
const CHANNEL = 0x4000;

interface Client {
  udp: UdpSocketState;
  username: string;
  nonce: string;
  realm: string;
  key: Uint8Array;
}

/** A loopback socket for the warm-up: no special options beyond what the relay's own peers and clients would do. */
function openLoopback(caps: UdpCapabilities, gso: boolean): UdpSocketState {
  return UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, bufferSize: 1 << 20, gso }, caps);
}

export class WarmupTraffic {
  private readonly caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
  private readonly stats = newStats();
  private readonly recv = new RecvBatch(16, 2048);
  private readonly send = new SendBatch(64, 2048);
  private readonly sockets: UdpSocketState[] = [];
  private readonly clients: Client[] = [];
  /** Two channel peers: one sends its echoes as UDP_SEGMENT trains (GRO buffers at the relay), one datagram by datagram. */
  private readonly channelPeers: UdpSocketState[];
  private readonly indicationPeer: UdpSocketState;
  private readonly channelPeersAt: Endpoint[];
  private readonly indicationPeerAt: Endpoint;
  private readonly server: Endpoint;
  private readonly payloads = { small: new Uint8Array(100), rtp: new Uint8Array(1200), last: new Uint8Array(250), audio: new Uint8Array(160) };
  private readonly channelData: { small: Uint8Array; rtp: Uint8Array; last: Uint8Array; audio: Uint8Array };
  private tid = new Uint8Array(12);
  /** Datagrams that came back to the clients (each was relayed twice). */
  returned = 0;

  constructor(serverPort: number, private readonly turn: () => void) {
    this.server = endpointFromBytes(LOOPBACK, serverPort);
    this.channelPeers = [true, false].map((gso) => this.track(openLoopback(this.caps, gso)));
    this.indicationPeer = this.track(openLoopback(this.caps, true));
    this.channelPeersAt = this.channelPeers.map((peer) => endpointFromBytes(LOOPBACK, boundPort(peer.fd)));
    this.indicationPeerAt = endpointFromBytes(LOOPBACK, boundPort(this.indicationPeer.fd));
    const p = this.payloads;
    this.channelData = { small: encodeChannelData(CHANNEL, p.small), rtp: encodeChannelData(CHANNEL, p.rtp), last: encodeChannelData(CHANNEL, p.last), audio: encodeChannelData(CHANNEL, p.audio) };
  }

  private track(udp: UdpSocketState): UdpSocketState {
    this.sockets.push(udp);
    return udp;
  }

  /**
   * Opens `count` clients and takes each through Allocate (401 then signed), CreatePermission and
   * ChannelBind. Every other client sends its bursts and frames as UDP_SEGMENT trains (which loopback
   * delivers to the relay's UDP_GRO listener as one buffer, as a NIC's GRO would); the others datagram
   * by datagram, as from a NIC without GRO. Likewise for the channel peers, client k's being peer k mod 2.
   */
  setUp(count: number, username: string, password: string): void {
    for (let k = 0; k < count; k++) {
      const udp = this.track(openLoopback(this.caps, k % 2 === 0));
      const challenge = this.request(udp, StunMethod.Allocate, (w) => writeRequestedTransport(w, 17));
      if (challenge.cls !== StunClass.ErrorResponse) throw new Error("warm-up: the first Allocate was not challenged");
      const realm = readText(challenge.realm!, 0, challenge.realm!.length, Attr.Realm)!;
      const nonce = readText(challenge.nonce!, 0, challenge.nonce!.length, Attr.Nonce)!;
      const client: Client = { udp, username, realm, nonce, key: md5Key(username, realm, password) };
      this.expectSuccess(client, StunMethod.Allocate, (w) => {
        writeRequestedTransport(w, 17);
        writeLifetime(w, 600);
      });
      this.expectSuccess(client, StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, this.indicationPeerAt));
      this.expectSuccess(client, StunMethod.ChannelBind, (w) => {
        writeChannelNumber(w, CHANNEL);
        writeXorAddress(w, Attr.XorPeerAddress, this.channelPeersAt[k % 2]!);
      });
      this.clients.push(client);
    }
  }

  /** Refresh of every allocation (LIFETIME 0 ends it, RFC 8656 §7.2 and §8). */
  refresh(lifetime: number): void {
    for (const c of this.clients) this.expectSuccess(c, StunMethod.Refresh, (w) => writeLifetime(w, lifetime));
  }

  /**
   * One round of data. `bulk`: from every client a burst of 16 equal ChannelData datagrams, a video frame
   * (5 x 1200 + 250 bytes), an audio datagram and a Send indication. Otherwise one audio datagram per
   * client, as a call between frames looks to the relay. The peers echo all of it.
   */
  round(bulk: boolean): void {
    const cd = this.channelData;
    const server = this.server;
    for (const c of this.clients) {
      if (bulk) {
        for (let i = 0; i < 16; i++) this.queue(c.udp, server, cd.small);
        for (let i = 0; i < 5; i++) this.queue(c.udp, server, cd.rtp);
        this.queue(c.udp, server, cd.last);
        this.queue(c.udp, server, this.sendIndication());
      }
      this.queue(c.udp, server, cd.audio);
    }
    this.flush();
    this.turn();
    for (const peer of this.channelPeers) this.echo(peer);
    this.echo(this.indicationPeer);
    this.turn();
    for (const c of this.clients) this.returned += this.drain(c.udp);
  }

  private sendIndication(): Uint8Array {
    crypto.getRandomValues(this.tid);
    const w = new StunWriter(StunMethod.Send, StunClass.Indication, this.tid, 256);
    writeXorAddress(w, Attr.XorPeerAddress, this.indicationPeerAt);
    writeData(w, this.payloads.small);
    return w.bytes.slice();
  }

  /** A peer sends back every datagram it got, to its source (runs of one size leave as GSO messages). */
  private echo(peer: UdpSocketState): void {
    for (;;) {
      const n = receiveBatch(peer, this.recv, this.stats, libc);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const source = this.recv.names.subarray(i * SOCKADDR_SLOT + 4, i * SOCKADDR_SLOT + 8);
        this.send.push(peer, source, this.recv.sourcePort(i), this.recv.datagram(i));
        if (this.send.full) this.flush();
      }
      this.flush();
      if (n < this.recv.capacity) return;
    }
  }

  private drain(udp: UdpSocketState): number {
    let got = 0;
    for (;;) {
      const n = receiveBatch(udp, this.recv, this.stats, libc);
      if (n <= 0) return got;
      got += n;
      if (n < this.recv.capacity) return got;
    }
  }

  private queue(udp: UdpSocketState, to: Endpoint, bytes: Uint8Array): void {
    this.send.push(udp, to.address, to.port, bytes);
    if (this.send.full) this.flush();
  }

  private flush(): void {
    if (this.send.count) flushSendBatch(this.send, this.stats, libc);
  }

  /** A request signed with the client's long-term key (RFC 8489 §9.2.3) that must succeed. */
  private expectSuccess(c: Client, method: number, build: (w: StunWriter) => void): void {
    const answer = this.request(c.udp, method, (w) => {
      build(w);
      writeText(w, Attr.Username, c.username);
      writeText(w, Attr.Realm, c.realm);
      writeText(w, Attr.Nonce, c.nonce);
      writeMessageIntegrity(w, c.key);
    });
    if (answer.cls !== StunClass.SuccessResponse) throw new Error(`warm-up: request 0x${method.toString(16)} refused (${answer.code ?? "?"})`);
  }

  /** One request, one turn of the engine, its answer (the loopback delivers before sendmsg returns). */
  private request(udp: UdpSocketState, method: number, build: (w: StunWriter) => void): { cls: number; code?: number; realm?: Uint8Array; nonce?: Uint8Array } {
    crypto.getRandomValues(this.tid);
    const w = new StunWriter(method, StunClass.Request, this.tid, 512);
    build(w);
    this.queue(udp, this.server, w.bytes.slice());
    this.flush();
    for (let tries = 0; tries < 3; tries++) {
      this.turn();
      const n = receiveBatch(udp, this.recv, this.stats, libc);
      for (let i = 0; i < n; i++) {
        const decoded = decodeStun(this.recv.datagram(i));
        if (!decoded.ok || decoded.message.method !== method) continue;
        const m = decoded.message;
        const error = getAttribute(m, Attr.ErrorCode);
        const code = error ? readErrorCode(error, 0, error.length)?.code : undefined;
        return { cls: m.cls, code, realm: getAttribute(m, Attr.Realm)?.slice(), nonce: getAttribute(m, Attr.Nonce)?.slice() };
      }
    }
    throw new Error(`warm-up: no answer to request 0x${method.toString(16)}`);
  }

  close(): void {
    for (const s of this.sockets) s.close(libc);
    this.sockets.length = 0;
  }
}
