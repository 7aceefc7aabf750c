/**
 * TURN over TLS (`turns:`, RFC 8656 §3.1, port 5349): Bun terminates TLS in the main thread, and each
 * decrypted stream goes to an engine over a private Unix socket, prefixed with a PROXY v2 header naming
 * the real client, so the engine treats it exactly like a TCP client. Engines are picked round-robin;
 * relays stay UDP in the engine. Backpressure is honoured both ways with bounded buffers.
 *
 * What one client can hold is bounded: the connection caps shared with the engines' TCP listeners
 * (per source and in total), a handshake timeout (the engine stream is only opened once the handshake
 * succeeded, so a silent client or half a ClientHello costs one socket for that long), bytes per
 * connection and for all connections together, and a listener that is closed while the process is out
 * of descriptors (descriptor-watch.ts) instead of spinning in Bun's accept loop.
 */
import type { Socket, TCPSocketListenOptions, TCPSocketListener } from "bun";
import { encodeProxyV2 } from "../net/proxy-protocol.ts";
import { parseEndpoint, type Endpoint } from "../net/endpoint.ts";
import { nextStreamFrame } from "../stun/stream-framing.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { DescriptorWatch } from "./descriptor-watch.ts";
import { describeCertificate, readTlsMaterial, type TlsMaterial } from "./tls-certificate.ts";

interface Pipe {
  client: Socket<Pipe>;
  from: Endpoint;
  engine: Socket<undefined> | null;
  /** Closes the client if its handshake has not finished in time; cleared by the handshake. */
  handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes waiting for the engine socket (before it connects, or while it is full). */
  toEngine: Uint8Array[];
  toEngineBytes: number;
  toClient: Uint8Array[];
  toClientBytes: number;
  /** Engine output not yet cut into whole frames. */
  fromEngine: Uint8Array;
  fromEngineLength: number;
  closed: boolean;
}

export interface TlsFrontOptions {
  listeningIps: string[];
  port: number;
  cert: string;
  key: string;
  /** One Unix socket path per engine (TcpTransport.listenUnix). */
  enginePaths: string[];
  /** Shared with the engines' TCP listeners: one source's TCP and TLS connections count together. */
  limits: ConnectionLimits;
  handshakeTimeoutMs: number;
  /** Bytes one connection may hold each way (pending for the engine, for the client). */
  maxBufferPerConnection: number;
  /** Bytes all connections may hold together. */
  maxBufferTotal: number;
  /** More Bun TLS settings (tls-settings.ts: passphrase, ciphers, CA, versions). */
  settings?: Record<string, unknown>;
  onError(message: string): void;
}

/** Bun.listen honours `reusePort` (SO_REUSEPORT) although its type leaves it out. */
type SharedPortListenOptions = TCPSocketListenOptions<Pipe> & { reusePort: boolean };

export class TlsFront {
  private readonly servers: Array<TCPSocketListener<Pipe>> = [];
  private readonly pipes = new Set<Pipe>();
  private readonly options: TlsFrontOptions;
  private readonly watch: DescriptorWatch;
  private nextEngine = 0;
  /** Bytes held in all pipes' queues and frame buffers. */
  private held = 0;
  /** A listen that failed after a pause is tried again by this timer. */
  private retry: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** The certificate and key in use: read at start, replaced by each reload that works. */
  private material: TlsMaterial;

  private constructor(options: TlsFrontOptions) {
    this.options = options;
    this.material = readTlsMaterial(options.cert, options.key);
    this.watch = new DescriptorWatch((exhausted) => (exhausted ? this.pause() : this.resume()));
  }

  /** Listens on every listening address; throws (e.g. EADDRINUSE, a bad certificate) with the reason. */
  static start(options: TlsFrontOptions): TlsFront {
    const front = new TlsFront(options);
    try {
      // The listeners share their port (SO_REUSEPORT) so that a reload can open new ones before the
      // old ones close; a plain bind first makes a port another server holds an error, as before.
      for (const hostname of options.listeningIps) Bun.listen({ hostname, port: options.port, socket: { data() {} } }).stop(true);
      front.listen();
    } catch (error) {
      front.stop();
      throw error;
    }
    front.watch.start();
    return front;
  }

  get connectionCount(): number {
    return this.pipes.size;
  }

  /** Bytes held by all connections now. */
  get bufferedBytes(): number {
    return this.held;
  }

  /** The certificate's description for the log (tls-certificate.ts). */
  get certificate(): string {
    return describeCertificate(this.material.cert);
  }

  /**
   * Reads the certificate and key again (SIGUSR2, or the files changed). New listeners with the new pair
   * open beside the old ones, then the old ones stop accepting: connections already open keep their TLS
   * session and their allocations. A pair that does not load (unreadable, not PEM, key not matching the
   * certificate, wrong passphrase) changes nothing and the Error says why.
   */
  reloadCertificate(): void {
    const next = readTlsMaterial(this.options.cert, this.options.key);
    const old = this.servers.splice(0);
    try {
      if (old.length === 0) {
        // Paused (out of descriptors): check the pair on a throwaway listener; resume() will use it.
        Bun.listen({ hostname: "127.0.0.1", port: 0, tls: { ...this.options.settings, ...next }, socket: { data() {} } }).stop(true);
      } else {
        this.listen(next);
      }
    } catch (error) {
      for (const server of this.servers) server.stop(false);
      this.servers.length = 0;
      this.servers.push(...old);
      throw error;
    }
    for (const server of old) server.stop(false);
    this.material = next;
  }

  private listen(material = this.material): void {
    const tls = { ...this.options.settings, cert: material.cert, key: material.key };
    for (const hostname of this.options.listeningIps) {
      const options: SharedPortListenOptions = {
        hostname,
        port: this.options.port,
        reusePort: true,
        tls,
        socket: {
          open: (socket) => this.accept(socket),
          handshake: (socket, success) => this.handshake(socket.data, success),
          data: (socket, data) => this.fromClient(socket.data, data),
          drain: (socket) => this.flush(socket.data, "client"),
          close: (socket) => this.close(socket.data),
          error: (socket) => this.close(socket.data),
        },
      };
      this.servers.push(Bun.listen<Pipe>(options));
    }
  }

  /** Out of descriptors: stop listening (connections stay) so Bun's accept loop cannot spin. */
  private pause(): void {
    this.options.onError("TLS: out of file descriptors; not accepting TLS connections until some are free");
    for (const server of this.servers) server.stop(false);
    this.servers.length = 0;
  }

  private resume(): void {
    try {
      this.listen();
      this.options.onError("TLS: file descriptors free again; accepting TLS connections");
    } catch (error) {
      for (const server of this.servers) server.stop(false);
      this.servers.length = 0;
      this.options.onError(`TLS: cannot listen again on port ${this.options.port}: ${(error as Error).message}; retrying in 1 s`);
      // The watch saw descriptors come back and will not call again: retry here until it works.
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.stopped && !this.watch.isExhausted && this.servers.length === 0) this.resume();
      }, 1000);
    }
  }

  private accept(client: Socket<Pipe>): void {
    let from: Endpoint;
    let to: Endpoint;
    try {
      from = parseEndpoint(client.remoteAddress, client.remotePort);
      to = parseEndpoint(client.localAddress, client.localPort);
    } catch {
      return void client.terminate();
    }
    // Over a cap: reset at once, before any TLS work is spent on it.
    if (!this.options.limits.admit(from.address)) return void client.terminate();
    const pipe: Pipe = {
      client, from, engine: null, handshakeTimer: undefined, toEngine: [], toEngineBytes: 0, toClient: [], toClientBytes: 0,
      fromEngine: new Uint8Array(0), fromEngineLength: 0, closed: false,
    };
    client.data = pipe;
    this.pipes.add(pipe);
    pipe.handshakeTimer = setTimeout(() => this.close(pipe, true), this.options.handshakeTimeoutMs);
    this.queue(pipe, "engine", encodeProxyV2(from, to));
  }

  /** Only a client that finished its handshake gets an engine stream. */
  private handshake(pipe: Pipe | undefined, success: boolean): void {
    if (!pipe || pipe.closed) return;
    clearTimeout(pipe.handshakeTimer);
    pipe.handshakeTimer = undefined;
    if (!success) return this.close(pipe, true);
    const path = this.options.enginePaths[this.nextEngine++ % this.options.enginePaths.length]!;
    Bun.connect({
      unix: path,
      socket: {
        open: (engine) => {
          if (pipe.closed) return void engine.end();
          pipe.engine = engine;
          this.flush(pipe, "engine");
        },
        data: (_engine, data) => this.fromEngine(pipe, data),
        drain: () => this.flush(pipe, "engine"),
        close: () => this.close(pipe),
        error: () => this.close(pipe),
      },
    }).catch((error: unknown) => {
      this.options.onError(`TLS: cannot reach engine socket ${path}: ${String(error)}`);
      this.close(pipe);
    });
  }

  private fromClient(pipe: Pipe | undefined, data: Uint8Array): void {
    if (pipe) this.queue(pipe, "engine", data);
  }

  /**
   * Engine output goes to the client one STUN/ChannelData message per TLS record, as coturn writes it:
   * some clients (turnutils_uclient among them) take each TLS read as exactly one message.
   */
  private fromEngine(pipe: Pipe, data: Uint8Array): void {
    const needed = pipe.fromEngineLength + data.length;
    if (needed > pipe.fromEngine.length) {
      const size = Math.max(needed, pipe.fromEngine.length * 2, 4096);
      if (!this.reserve(pipe, size - pipe.fromEngine.length, size)) return this.close(pipe, true);
      const bigger = new Uint8Array(size);
      bigger.set(pipe.fromEngine.subarray(0, pipe.fromEngineLength));
      pipe.fromEngine = bigger;
    }
    pipe.fromEngine.set(data, pipe.fromEngineLength);
    pipe.fromEngineLength = needed;
    let start = 0;
    for (;;) {
      const frame = nextStreamFrame(pipe.fromEngine, start, pipe.fromEngineLength);
      if (frame < 0) return this.close(pipe);
      if (frame === 0) break;
      this.queue(pipe, "client", pipe.fromEngine.subarray(start, start + frame));
      if (pipe.closed) return;
      start += frame;
    }
    pipe.fromEngine.copyWithin(0, start, pipe.fromEngineLength);
    pipe.fromEngineLength -= start;
  }

  /** Takes `bytes` from the budgets; false when the connection (at `perConnection` bytes) or all of them would exceed theirs. */
  private reserve(_pipe: Pipe, bytes: number, perConnection: number): boolean {
    if (perConnection > this.options.maxBufferPerConnection || this.held + bytes > this.options.maxBufferTotal) return false;
    this.held += bytes;
    return true;
  }

  private queue(pipe: Pipe, to: "engine" | "client", data: Uint8Array): void {
    if (pipe.closed) return;
    const waiting = to === "engine" ? pipe.toEngineBytes : pipe.toClientBytes;
    // A client that stops reading (or an engine that does) cannot hold the server's memory hostage.
    if (!this.reserve(pipe, data.length, waiting + data.length)) return this.close(pipe, true);
    // Bun reuses the data buffer after the callback: keep a copy of what cannot be written now.
    (to === "engine" ? pipe.toEngine : pipe.toClient).push(Uint8Array.from(data));
    if (to === "engine") pipe.toEngineBytes += data.length;
    else pipe.toClientBytes += data.length;
    this.flush(pipe, to);
  }

  private flush(pipe: Pipe | undefined, to: "engine" | "client"): void {
    if (!pipe) return;
    const socket = to === "engine" ? pipe.engine : pipe.client;
    if (!socket || pipe.closed) return;
    const list = to === "engine" ? pipe.toEngine : pipe.toClient;
    while (list.length > 0) {
      const chunk = list[0]!;
      const written = socket.write(chunk);
      if (written < 0) return this.close(pipe);
      if (to === "engine") pipe.toEngineBytes -= written;
      else pipe.toClientBytes -= written;
      this.held -= written;
      if (written < chunk.length) {
        list[0] = chunk.subarray(written);
        return; // the rest goes on 'drain'
      }
      list.shift();
    }
  }

  /** `abrupt`: over a limit or out of time, reset rather than wait to flush to a client that may never read. */
  private close(pipe: Pipe | undefined, abrupt = false): void {
    if (!pipe || pipe.closed) return;
    pipe.closed = true;
    clearTimeout(pipe.handshakeTimer);
    this.pipes.delete(pipe);
    this.held -= pipe.toEngineBytes + pipe.toClientBytes + pipe.fromEngine.length;
    pipe.toEngine.length = pipe.toClient.length = 0;
    this.options.limits.release(pipe.from.address);
    if (abrupt) pipe.client.terminate();
    else pipe.client.end();
    pipe.engine?.end();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.watch.stop();
    for (const pipe of [...this.pipes]) this.close(pipe);
    for (const server of this.servers) server.stop(true);
    this.servers.length = 0;
  }
}
