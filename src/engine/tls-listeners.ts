/**
 * The TLS front end's listening sockets over their lifetime: opened on every listening address, opened
 * again beside the old ones with a reloaded certificate, and closed while the process is out of
 * descriptors (descriptor-watch.ts: Bun's accept loop would spin) then reopened, retried every second
 * until that works. What happens on an accepted connection is the handlers' business (tls-front.ts).
 */
import type { SocketHandler, TCPSocketListenOptions, TCPSocketListener } from "bun";
import { DescriptorWatch } from "./descriptor-watch.ts";
import { describeCertificate, readTlsMaterial, type TlsMaterial } from "./tls-certificate.ts";

export interface TlsListenOptions {
  listeningIps: string[];
  port: number;
  cert: string;
  key: string;
  /** More Bun TLS settings (tls-settings.ts: passphrase, ciphers, CA, versions). */
  settings?: Record<string, unknown>;
  onError(message: string): void;
}

/** Bun.listen honours `reusePort` (SO_REUSEPORT) although its type leaves it out. */
type SharedPortListenOptions<T> = TCPSocketListenOptions<T> & { reusePort: boolean };

export class TlsListeners<T> {
  private readonly servers: Array<TCPSocketListener<T>> = [];
  private readonly watch: DescriptorWatch;
  /** A listen that failed after a pause is tried again by this timer. */
  private retry: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** The certificate and key in use: read at start, replaced by each reload that works. */
  private material: TlsMaterial;

  /** Reads the certificate and key (throws when they do not load); listens only at start(). */
  constructor(
    private readonly options: TlsListenOptions,
    private readonly handlers: SocketHandler<T>,
  ) {
    this.material = readTlsMaterial(options.cert, options.key);
    this.watch = new DescriptorWatch((exhausted) => (exhausted ? this.pause() : this.resume()));
  }

  /** Listens on every listening address; throws (e.g. EADDRINUSE, a bad certificate) with the reason. */
  start(): void {
    const { listeningIps, port } = this.options;
    // The listeners share their port (SO_REUSEPORT) so that a reload can open new ones before the
    // old ones close; a plain bind first makes a port another server holds an error, as before.
    for (const hostname of listeningIps) Bun.listen({ hostname, port, socket: { data() {} } }).stop(true);
    this.listen();
    this.watch.start();
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
      this.closeServers();
      this.servers.push(...old);
      throw error;
    }
    for (const server of old) server.stop(false);
    this.material = next;
  }

  private listen(material = this.material): void {
    const tls = { ...this.options.settings, cert: material.cert, key: material.key };
    for (const hostname of this.options.listeningIps) {
      const options: SharedPortListenOptions<T> = { hostname, port: this.options.port, reusePort: true, tls, socket: this.handlers };
      this.servers.push(Bun.listen<T>(options));
    }
  }

  /** Stops accepting; the connections already open stay. */
  private closeServers(): void {
    for (const server of this.servers) server.stop(false);
    this.servers.length = 0;
  }

  /** Out of descriptors: stop listening (connections stay) so Bun's accept loop cannot spin. */
  private pause(): void {
    this.options.onError("TLS: out of file descriptors; not accepting TLS connections until some are free");
    this.closeServers();
  }

  private resume(): void {
    try {
      this.listen();
      this.options.onError("TLS: file descriptors free again; accepting TLS connections");
    } catch (error) {
      this.closeServers();
      this.options.onError(`TLS: cannot listen again on port ${this.options.port}: ${(error as Error).message}; retrying in 1 s`);
      // The watch saw descriptors come back and will not call again: retry here until it works.
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.stopped && !this.watch.isExhausted && this.servers.length === 0) this.resume();
      }, 1000);
    }
  }

  /** Stops the watch and the listeners, closing what Bun still holds on them. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.watch.stop();
    for (const server of this.servers) server.stop(true);
    this.servers.length = 0;
  }
}
