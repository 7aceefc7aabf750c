/**
 * TURN over TLS (`turns:`, RFC 8656 §3.1, port 5349): Bun terminates TLS in the main thread, and each
 * decrypted stream goes to an engine over a private Unix socket, prefixed with a PROXY v2 header naming
 * the real client, so the engine treats it exactly like a TCP client. Engines are picked round-robin;
 * relays stay UDP in the engine. Backpressure is honoured both ways with bounded buffers.
 *
 * What one client can hold is bounded: the connection caps shared with the engines' TCP listeners
 * (per source and in total), a handshake timeout (the engine stream is only opened once the handshake
 * succeeded, so a silent client or half a ClientHello costs one socket for that long), bytes per
 * connection and for all connections together, and listeners that close while the process is out of
 * descriptors instead of spinning in Bun's accept loop (tls-listeners.ts: their lifetime, reload included).
 */
import type { Socket } from "bun";
import { encodeProxyV2 } from "../net/proxy-protocol.ts";
import { parseEndpoint, type Endpoint } from "../net/endpoint.ts";
import { nextStreamFrame } from "../stun/stream-framing.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { TlsListeners, type TlsListenOptions } from "./tls-listeners.ts";

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
  /** RFC 6062 §5.4: a data connection after its ConnectionBind success: its bytes are the peer's, not messages. */
  raw?: boolean;
}

/** A ConnectionBind success response's message type (RFC 6062 §6.1): after it the engine's output is a byte pipe. */
const CONNECTION_BIND_SUCCESS = 0x010b;

export interface TlsFrontOptions extends TlsListenOptions {
  /** One Unix socket path per engine (TcpTransport.listenUnix). */
  enginePaths: string[];
  /** Shared with the engines' TCP listeners: one source's TCP and TLS connections count together. */
  limits: ConnectionLimits;
  handshakeTimeoutMs: number;
  /** Bytes one connection may hold each way (pending for the engine, for the client). */
  maxBufferPerConnection: number;
  /** Bytes all connections may hold together. */
  maxBufferTotal: number;
}

export class TlsFront {
  private readonly pipes = new Set<Pipe>();
  private readonly options: TlsFrontOptions;
  private readonly listening: TlsListeners<Pipe>;
  private nextEngine = 0;
  /** Bytes held in all pipes' queues and frame buffers. */
  private held = 0;

  private constructor(options: TlsFrontOptions) {
    this.options = options;
    this.listening = new TlsListeners<Pipe>(options, {
      open: (socket) => this.accept(socket),
      handshake: (socket, success) => this.handshake(socket.data, success),
      data: (socket, data) => this.fromClient(socket.data, data),
      drain: (socket) => this.flush(socket.data, "client"),
      close: (socket) => this.close(socket.data),
      error: (socket) => this.close(socket.data),
    });
  }

  /** Listens on every listening address; throws (e.g. EADDRINUSE, a bad certificate) with the reason. */
  static start(options: TlsFrontOptions): TlsFront {
    const front = new TlsFront(options);
    try {
      front.listening.start();
    } catch (error) {
      front.stop();
      throw error;
    }
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
    return this.listening.certificate;
  }

  /** See TlsListeners.reloadCertificate: open connections keep their sessions; throws when the pair does not load. */
  reloadCertificate(): void {
    this.listening.reloadCertificate();
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
    if (pipe.raw) return this.queue(pipe, "client", data);
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
      const type = (pipe.fromEngine[start]! << 8) | pipe.fromEngine[start + 1]!;
      start += frame;
      if (type === CONNECTION_BIND_SUCCESS) {
        // The peer's bytes follow, unframed (the engine pipes them from now on).
        pipe.raw = true;
        const rest = pipe.fromEngine.slice(start, pipe.fromEngineLength);
        pipe.fromEngineLength = 0;
        if (rest.length > 0) this.queue(pipe, "client", rest);
        return;
      }
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
    for (const pipe of [...this.pipes]) this.close(pipe);
    this.listening.stop();
  }
}
