/**
 * TURN over TLS (`turns:`, RFC 8656 §3.1, port 5349): Bun terminates TLS in the main thread, and each
 * decrypted stream goes to an engine over a private Unix socket, prefixed with a PROXY v2 header naming
 * the real client, so the engine treats it exactly like a TCP client. Engines are picked round-robin;
 * relays stay UDP in the engine. Backpressure is honoured both ways with bounded buffers.
 */
import type { Socket, TCPSocketListener } from "bun";
import { encodeProxyV2 } from "../net/proxy-protocol.ts";
import { parseEndpoint } from "../net/endpoint.ts";
import { nextStreamFrame } from "../stun/stream-framing.ts";

/** A TLS client that stops reading may hold this much before it is dropped. */
const MAX_PENDING = 1 << 20;

interface Pipe {
  client: Socket<Pipe>;
  engine: Socket<undefined> | null;
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
  onError(message: string): void;
}

export class TlsFront {
  private readonly servers: Array<TCPSocketListener<Pipe>> = [];
  private readonly pipes = new Set<Pipe>();
  private readonly options: TlsFrontOptions;
  private nextEngine = 0;

  private constructor(options: TlsFrontOptions) {
    this.options = options;
  }

  /** Listens on every listening address; throws (e.g. EADDRINUSE, a bad certificate) with the reason. */
  static start(options: TlsFrontOptions): TlsFront {
    const front = new TlsFront(options);
    const tls = { cert: Bun.file(options.cert), key: Bun.file(options.key) };
    try {
      for (const hostname of options.listeningIps) {
        front.servers.push(
          Bun.listen<Pipe>({
            hostname,
            port: options.port,
            tls,
            socket: {
              open: (socket) => front.accept(socket),
              data: (socket, data) => front.fromClient(socket.data, data),
              drain: (socket) => front.flush(socket.data, "client"),
              close: (socket) => front.close(socket.data),
              error: (socket) => front.close(socket.data),
            },
          }),
        );
      }
    } catch (error) {
      front.stop();
      throw error;
    }
    return front;
  }

  get connectionCount(): number {
    return this.pipes.size;
  }

  private accept(client: Socket<Pipe>): void {
    const pipe: Pipe = {
      client, engine: null, toEngine: [], toEngineBytes: 0, toClient: [], toClientBytes: 0,
      fromEngine: new Uint8Array(4096), fromEngineLength: 0, closed: false,
    };
    client.data = pipe;
    this.pipes.add(pipe);
    let header: Uint8Array;
    try {
      const from = parseEndpoint(client.remoteAddress, client.remotePort);
      const to = parseEndpoint(client.localAddress, client.localPort);
      header = encodeProxyV2(from, to);
    } catch {
      return this.close(pipe);
    }
    this.queue(pipe, "engine", header);
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

  private fromClient(pipe: Pipe, data: Uint8Array): void {
    this.queue(pipe, "engine", data);
  }

  /**
   * Engine output goes to the client one STUN/ChannelData message per TLS record, as coturn writes it:
   * some clients (turnutils_uclient among them) take each TLS read as exactly one message.
   */
  private fromEngine(pipe: Pipe, data: Uint8Array): void {
    const needed = pipe.fromEngineLength + data.length;
    if (needed > MAX_PENDING) return this.close(pipe);
    if (needed > pipe.fromEngine.length) {
      const bigger = new Uint8Array(Math.max(needed, pipe.fromEngine.length * 2));
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
      start += frame;
    }
    pipe.fromEngine.copyWithin(0, start, pipe.fromEngineLength);
    pipe.fromEngineLength -= start;
  }

  private queue(pipe: Pipe, to: "engine" | "client", data: Uint8Array): void {
    if (pipe.closed) return;
    const list = to === "engine" ? pipe.toEngine : pipe.toClient;
    const waiting = to === "engine" ? pipe.toEngineBytes : pipe.toClientBytes;
    if (waiting + data.length > MAX_PENDING) return this.close(pipe);
    // Bun reuses the data buffer after the callback: keep a copy of what cannot be written now.
    list.push(Uint8Array.from(data));
    if (to === "engine") pipe.toEngineBytes += data.length;
    else pipe.toClientBytes += data.length;
    this.flush(pipe, to);
  }

  private flush(pipe: Pipe, to: "engine" | "client"): void {
    const socket = to === "engine" ? pipe.engine : pipe.client;
    if (!socket || pipe.closed) return;
    const list = to === "engine" ? pipe.toEngine : pipe.toClient;
    while (list.length > 0) {
      const chunk = list[0]!;
      const written = socket.write(chunk);
      if (written < 0) return this.close(pipe);
      if (to === "engine") pipe.toEngineBytes -= written;
      else pipe.toClientBytes -= written;
      if (written < chunk.length) {
        list[0] = chunk.subarray(written);
        return; // the rest goes on 'drain'
      }
      list.shift();
    }
  }

  private close(pipe: Pipe | undefined): void {
    if (!pipe || pipe.closed) return;
    pipe.closed = true;
    this.pipes.delete(pipe);
    pipe.client.end();
    pipe.engine?.end();
  }

  stop(): void {
    for (const pipe of [...this.pipes]) this.close(pipe);
    for (const server of this.servers) server.stop(true);
    this.servers.length = 0;
  }
}
