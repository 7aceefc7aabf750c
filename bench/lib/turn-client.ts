/**
 * A bench-side TURN client over the FFI layer: N UDP sockets (one 5-tuple, so one allocation, each),
 * authenticated Allocate / Refresh / ChannelBind with long-term credentials (401 -> realm+nonce ->
 * retry with MESSAGE-INTEGRITY; 438 -> new nonce -> retry), built with src/stun's writer and decoder.
 * Transactions run for all sockets at once, a window at a time, with retransmission; bounded in time.
 */
import {
  EPOLLIN, Epoll, RecvBatch, SendBatch, UdpCapabilities, UdpSocketState, boundPort, flushSendBatch, libc,
  newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseEndpoint, parseIp, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, getAttribute, readErrorCode, readText,
  writeChannelNumber, writeLifetime, writeMessageIntegrity, writeRequestedTransport, writeText, writeXorAddress,
} from "../../src/stun/index.ts";
import { md5Key } from "../../src/turn/credentials.ts";

const LOOPBACK = parseIp("127.0.0.1")!;

export interface Credentials {
  username: string;
  password: string;
}

export interface TurnClientSocket {
  udp: UdpSocketState;
  fd: number;
  port: number;
  nonce?: string;
  realm?: string;
  key?: Uint8Array;
  allocated: boolean;
}

type Build = (c: TurnClientSocket, w: StunWriter) => void;

export class TurnClients {
  readonly clients: TurnClientSocket[] = [];
  readonly epoll = new Epoll(1024);
  readonly byFd = new Map<number, TurnClientSocket>();
  private readonly recv = new RecvBatch(16, 2048);
  private readonly send = new SendBatch(64, 2048);
  private readonly caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
  private readonly stats = newStats();
  readonly server: Endpoint;

  constructor(serverPort: number, count: number, readonly creds: Credentials, bufferSize = 0) {
    this.server = parseEndpoint("127.0.0.1", serverPort);
    for (let i = 0; i < count; i++) {
      const udp = UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, ...(bufferSize ? { bufferSize } : {}) }, this.caps);
      const fd = udp.fd;
      const c: TurnClientSocket = { udp, fd, port: boundPort(fd), allocated: false };
      this.clients.push(c);
      this.byFd.set(fd, c);
      this.epoll.add(fd, EPOLLIN);
    }
  }

  /** Queues raw bytes from a client to the server (flush() sends). */
  queue(c: TurnClientSocket, bytes: Uint8Array): void {
    this.send.push(c.udp, this.server.address, this.server.port, bytes);
    if (this.send.full) this.flush();
  }
  flush(): void {
    if (this.send.count) flushSendBatch(this.send, this.stats, libc);
  }

  /**
   * Runs one request per client in `which` to completion: builds it (signed when the client has a
   * nonce), sends a window of them, retransmits after 500 ms, follows 401/438 once each. Returns the
   * clients whose request got a success response.
   */
  transact(method: number, which: TurnClientSocket[], attrs: Build, options: { window?: number; timeoutMs?: number } = {}): TurnClientSocket[] {
    const window = options.window ?? 200;
    const deadline = Date.now() + (options.timeoutMs ?? 30000);
    const ok: TurnClientSocket[] = [];
    const pending = new Map<number, { c: TurnClientSocket; tid: Uint8Array; bytes: Uint8Array; sentAt: number; tries: number; retries: number }>();
    let next = 0;
    const start = (c: TurnClientSocket, retries: number) => {
      const tid = crypto.getRandomValues(new Uint8Array(12));
      const w = new StunWriter(method, StunClass.Request, tid);
      attrs(c, w);
      if (c.nonce !== undefined && c.key) {
        writeText(w, Attr.Username, this.creds.username);
        writeText(w, Attr.Realm, c.realm!);
        writeText(w, Attr.Nonce, c.nonce);
        writeMessageIntegrity(w, c.key);
      }
      const bytes = w.finish().slice();
      pending.set(c.fd, { c, tid, bytes, sentAt: Date.now(), tries: 1, retries });
      this.queue(c, bytes);
    };
    while ((next < which.length || pending.size > 0) && Date.now() < deadline) {
      while (next < which.length && pending.size < window) start(which[next++]!, 0);
      this.flush();
      const ready = this.epoll.wait(50);
      for (let e = 0; e < ready; e++) {
        const fd = this.epoll.eventToken(e);
        for (;;) {
          const n = receiveBatch(this.byFd.get(fd)!.udp, this.recv, this.stats, libc);
          if (n <= 0) break;
          for (let i = 0; i < n; i++) {
            const p = pending.get(fd);
            if (!p) continue;
            const d = decodeStun(this.recv.datagram(i));
            if (!d.ok || d.message.method !== method) continue;
            const m = d.message;
            if (!m.transactionId.every((b, k) => b === p.tid[k])) continue;
            pending.delete(fd);
            if (m.cls === StunClass.SuccessResponse) {
              ok.push(p.c);
              continue;
            }
            const ec = getAttribute(m, Attr.ErrorCode);
            const code = ec ? readErrorCode(ec, 0, ec.length)?.code : undefined;
            const nonce = getAttribute(m, Attr.Nonce);
            const realm = getAttribute(m, Attr.Realm);
            if ((code === 401 || code === 438) && nonce && p.retries < 2) {
              p.c.nonce = readText(nonce, 0, nonce.length, Attr.Nonce)!;
              if (realm) p.c.realm = readText(realm, 0, realm.length, Attr.Realm)!;
              p.c.key = md5Key(this.creds.username, p.c.realm!, this.creds.password);
              start(p.c, p.retries + 1);
            }
          }
          if (n < 16) break;
        }
      }
      const now = Date.now();
      for (const p of pending.values()) {
        if (now - p.sentAt < 500) continue;
        if (p.tries >= 6) {
          pending.delete(p.c.fd);
          continue;
        }
        p.tries++;
        p.sentAt = now;
        this.queue(p.c, p.bytes);
      }
    }
    this.flush();
    return ok;
  }

  allocate(which = this.clients, lifetime = 600): TurnClientSocket[] {
    const ok = this.transact(StunMethod.Allocate, which, (_c, w) => {
      writeRequestedTransport(w, 17);
      writeLifetime(w, lifetime);
    });
    for (const c of ok) c.allocated = true;
    return ok;
  }

  /** Refresh with LIFETIME 0: the allocation goes away (RFC 8656 §7). */
  release(which = this.clients.filter((c) => c.allocated)): TurnClientSocket[] {
    const ok = this.transact(StunMethod.Refresh, which, (_c, w) => writeLifetime(w, 0));
    for (const c of ok) c.allocated = false;
    return ok;
  }

  channelBind(which: TurnClientSocket[], peer: Endpoint, channel = 0x4000): TurnClientSocket[] {
    return this.transact(StunMethod.ChannelBind, which, (_c, w) => {
      writeChannelNumber(w, channel);
      writeXorAddress(w, Attr.XorPeerAddress, peer);
    });
  }

  close(): void {
    for (const c of this.clients) c.udp.close(libc);
    this.clients.length = 0;
    this.byFd.clear();
    this.epoll.close();
  }
}
