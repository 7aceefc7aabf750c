/**
 * TURN over TLS behind a load balancer that passes TLS through (`--tls-proxy-port`; HAProxy `mode tcp` with
 * `send-proxy-v2`, no `ssl`): each connection starts with a PROXY v1 or v2 header (src/net/proxy-protocol.ts)
 * naming the real client, then carries the client's own TLS. The header is read here in the main thread,
 * TLS is terminated with node:tls over the same socket, and the decrypted stream goes to an engine exactly
 * as the TLS front end's do (its Unix socket, a PROXY v2 header naming the claimed client first).
 *
 * Bounded like the other listeners: the header within 5 s and 1 KiB, the TLS handshake within
 * --tls-handshake-timeout, the connection caps counted against the claimed client, and backpressure both
 * ways by pausing the other side (node streams), so one connection holds at most a frame and the streams'
 * high-water marks. Certificate and key are read again when their files change (a renewal applies to new
 * connections; open ones keep their session).
 */
import { statSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { TLSSocket, createSecureContext, type SecureContext } from "node:tls";
import { readFileSync } from "node:fs";
import type { TlsConfig } from "../config/resolve.ts";
import { PROXY_V2_MAX, encodeProxyV2, parseProxyHeader } from "../net/proxy-protocol.ts";
import { parseEndpoint, type Endpoint } from "../net/endpoint.ts";
import { nextStreamFrame } from "../stun/stream-framing.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { readTlsMaterial } from "./tls-certificate.ts";
import { tlsSecureOptions } from "./tls-settings.ts";
import { MAX_FRAME } from "./stream-buffers.ts";

const HEADER_TIMEOUT_MS = 5_000;

export interface TlsBalancerOptions {
  listeningIps: string[];
  port: number;
  tls: TlsConfig;
  /** One Unix socket path per engine, shared with the TLS front end. */
  enginePaths: string[];
  limits: ConnectionLimits;
  handshakeTimeoutMs: number;
  onError(message: string): void;
}

export class TlsBalancer {
  private readonly servers: Server[] = [];
  private readonly open = new Set<Socket>();
  private nextEngine = 0;
  private context: SecureContext | undefined;
  private contextStamp = "";

  private constructor(private readonly options: TlsBalancerOptions) {}

  /** Listens on every listening address; rejects (a port in use, a certificate that does not load) with the reason. */
  static async start(options: TlsBalancerOptions): Promise<TlsBalancer> {
    const balancer = new TlsBalancer(options);
    try {
      balancer.secureContext();
      for (const host of options.listeningIps) {
        const server = createServer((raw) => balancer.accept(raw));
        balancer.servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host, port: options.port, exclusive: true }, () => resolve());
        });
      }
    } catch (error) {
      balancer.stop();
      throw error;
    }
    return balancer;
  }

  /** The certificate and key, read again when either file changed; a pair that does not load keeps the old one. */
  private secureContext(): SecureContext {
    const { cert, key } = this.options.tls;
    let stamp = "";
    try {
      stamp = `${statSync(cert).mtimeMs}/${statSync(key).mtimeMs}`;
    } catch {
      // unreadable now: keep what we have
    }
    if (this.context && (stamp === "" || stamp === this.contextStamp)) return this.context;
    try {
      const material = readTlsMaterial(cert, key);
      const tls = this.options.tls;
      this.context = createSecureContext({
        cert: material.cert, key: material.key, secureOptions: tlsSecureOptions(tls),
        ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
        ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
        ...(tls.caFile !== undefined ? { ca: readFileSync(tls.caFile) } : {}),
      });
      this.contextStamp = stamp;
    } catch (error) {
      if (!this.context) throw error;
      this.options.onError(`TLS behind the balancer: the new certificate does not load (${(error as Error).message}); keeping the old one`);
      this.contextStamp = stamp;
    }
    return this.context;
  }

  private accept(raw: Socket): void {
    raw.on("error", () => raw.destroy());
    this.open.add(raw);
    let counted: Uint8Array | null = null;
    raw.once("close", () => {
      this.open.delete(raw);
      if (counted) this.options.limits.release(counted);
    });
    let head = Buffer.alloc(0);
    const deadline = setTimeout(() => raw.destroy(), HEADER_TIMEOUT_MS);
    const onHeader = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const header = parseProxyHeader(head, 0, head.length);
      if (header === 0 && head.length <= PROXY_V2_MAX) return;
      raw.off("data", onHeader);
      clearTimeout(deadline);
      if (header === 0 || header === -1) return void raw.destroy();
      let client: Endpoint;
      let local: Endpoint;
      try {
        client = header.client ?? parseEndpoint(raw.remoteAddress!, raw.remotePort!);
        local = parseEndpoint(raw.localAddress!, raw.localPort!);
      } catch {
        return void raw.destroy();
      }
      if (!this.options.limits.admit(client.address)) return void raw.destroy();
      counted = client.address;
      raw.pause();
      if (header.length < head.length) raw.unshift(head.subarray(header.length));
      this.terminate(raw, client, local);
    };
    raw.on("data", onHeader);
  }

  /** TLS over the rest of the stream; once the handshake succeeds, the decrypted stream goes to an engine. */
  private terminate(raw: Socket, client: Endpoint, local: Endpoint): void {
    const tls = this.options.tls;
    const secure = new TLSSocket(raw, {
      isServer: true, secureContext: this.secureContext(),
      ...(tls.caFile !== undefined ? { requestCert: true, rejectUnauthorized: true } : {}),
    });
    const handshake = setTimeout(() => secure.destroy(), this.options.handshakeTimeoutMs);
    secure.on("error", () => secure.destroy());
    secure.once("close", () => {
      clearTimeout(handshake);
      raw.destroy();
    });
    secure.once("secure", () => {
      clearTimeout(handshake);
      const path = this.options.enginePaths[this.nextEngine++ % this.options.enginePaths.length]!;
      const engine = connect({ path });
      engine.on("error", (error) => {
        this.options.onError(`TLS behind the balancer: cannot reach engine socket ${path}: ${error.message}`);
        engine.destroy();
      });
      engine.once("close", () => secure.destroy());
      secure.once("close", () => engine.destroy());
      engine.write(encodeProxyV2(client, local));
      // Client to engine: pause the client while the engine's socket is full.
      secure.on("data", (data: Buffer) => {
        if (!engine.write(data)) secure.pause();
      });
      engine.on("drain", () => secure.resume());
      // Engine to client: one message per TLS record, as coturn writes them (some clients read one per record).
      let pending: Buffer = Buffer.alloc(0);
      engine.on("data", (data: Buffer) => {
        pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
        let start = 0;
        for (;;) {
          const frame = nextStreamFrame(pending, start, pending.length);
          if (frame < 0) return void secure.destroy();
          if (frame === 0) break;
          if (!secure.write(pending.subarray(start, start + frame))) engine.pause();
          start += frame;
        }
        pending = pending.subarray(start);
        if (pending.length > MAX_FRAME) secure.destroy();
      });
      secure.on("drain", () => engine.resume());
    });
  }

  stop(): void {
    for (const server of this.servers) server.close();
    this.servers.length = 0;
    for (const socket of [...this.open]) socket.destroy();
  }
}
