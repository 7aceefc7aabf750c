/**
 * The TLS ports as the server runs them: a private directory for the engines' hand-over sockets, the
 * front end that terminates TLS (tls-front.ts) with the certificate files' watch that reloads it, and
 * --tls-proxy-port's terminator behind a balancer (tls-balancer.ts), both handing streams to the same
 * engine sockets.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TlsFront } from "./tls-front.ts";
import { TlsBalancer } from "./tls-balancer.ts";
import { CertificateWatch } from "./tls-certificate.ts";
import { bunTlsSettings } from "./tls-settings.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { formatHostPort } from "../net/endpoint.ts";
import type { TlsConfig } from "../config/resolve.ts";
import type { StreamLimits } from "../config/stream-limits.ts";
import type { Logger } from "../logger.ts";

export class TlsService {
  /** One hand-over socket path per engine (TcpTransport.listenUnix), in the private directory. */
  readonly socketPaths: string[] = [];
  /** A private directory (0700), so only this process can hand streams to the engines; removed at stop. */
  private readonly directory: string;
  private front: TlsFront | undefined;
  private certificateWatch: CertificateWatch | undefined;
  private balancer: TlsBalancer | undefined;

  constructor(
    private readonly tls: TlsConfig,
    engines: number,
    private readonly logger: Logger,
  ) {
    this.directory = mkdtempSync(join(tmpdir(), "bunturn-tls-"));
    chmodSync(this.directory, 0o700);
    for (let i = 0; i < engines; i++) this.socketPaths.push(join(this.directory, `engine-${i}.sock`));
  }

  /** Whether the front end was started (start did not throw). */
  get started(): boolean {
    return this.front !== undefined;
  }

  /** Listens on every listening address (once the engines listen on their paths); returns the labels. */
  start(listeningIps: string[], limits: ConnectionLimits, streams: StreamLimits, onFilesChanged: () => void): string[] {
    const { tls, logger } = this;
    const front = (this.front = TlsFront.start({
      listeningIps,
      port: tls.port,
      cert: tls.cert,
      key: tls.key,
      settings: bunTlsSettings(tls),
      enginePaths: this.socketPaths,
      limits,
      handshakeTimeoutMs: streams.tlsHandshakeTimeoutMs,
      maxBufferPerConnection: streams.maxBufferPerConnection,
      maxBufferTotal: streams.maxBufferPerEngine,
      onError: (message) => logger.warn(message),
    }));
    logger.debug(`TLS certificate ${tls.cert}: ${front.certificate}`);
    this.certificateWatch = new CertificateWatch([tls.cert, tls.key], onFilesChanged);
    this.certificateWatch.start();
    return listeningIps.map((ip) => `${formatHostPort(ip, tls.port)} (TLS)`);
  }

  /** --tls-proxy-port: listens for a balancer's PROXY header then TLS; returns the labels. */
  async startBalancer(listeningIps: string[], port: number, limits: ConnectionLimits, streams: StreamLimits): Promise<string[]> {
    const logger = this.logger;
    this.balancer = await TlsBalancer.start({
      listeningIps,
      port,
      tls: this.tls,
      enginePaths: this.socketPaths,
      limits,
      handshakeTimeoutMs: streams.tlsHandshakeTimeoutMs,
      onError: (message) => logger.warn(message),
    });
    return listeningIps.map((ip) => `${formatHostPort(ip, port)} (TLS, PROXY protocol)`);
  }

  /**
   * Loads the certificate and key again (TlsFront.reloadCertificate); TLS connections already open keep
   * their sessions. A pair that does not load leaves the old one in use, and the log says why.
   */
  reloadCertificate(cause: string): void {
    const front = this.front;
    if (front === undefined) return;
    this.certificateWatch?.settle();
    const file = this.tls.cert;
    try {
      front.reloadCertificate();
      this.logger.info(`${cause}: TLS certificate reloaded from ${file} (${front.certificate}); open TLS connections keep their sessions`);
    } catch (error) {
      this.logger.warn(`${cause}: TLS certificate NOT reloaded from ${file}: ${(error as Error).message}; still serving ${front.certificate}`);
    }
  }

  /** Stops accepting and watching; the engines may still hold their hand-over sockets. */
  stop(): void {
    this.certificateWatch?.stop();
    this.front?.stop();
    this.balancer?.stop();
  }

  /** After the engines have closed their hand-over sockets. */
  removeDirectory(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}
