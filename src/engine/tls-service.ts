/**
 * The main thread's side of TURN over TLS, which the engines terminate themselves (tls-connection.ts):
 * the certificate is checked here before the engines start (a clear start-up error with OpenSSL's
 * reason), its files are watched, and a reload (SIGUSR2, or the files changed) is checked here first,
 * then handed to the engines through a shared generation cell: each builds a new OpenSSL context for
 * new connections (open ones keep theirs) and marks the generation it loaded, and the log line comes
 * once every engine has, so a client that connects after it sees the new certificate.
 */
import { formatHostPort } from "../net/endpoint.ts";
import type { TlsConfig } from "../config/resolve.ts";
import type { Logger } from "../logger.ts";
import { serverContext } from "./engine-tls.ts";
import { CertificateWatch, describeCertificate, readTlsMaterial } from "./tls-certificate.ts";

/** Cell 0: the generation asked for; cell 1 + i: the one engine i has loaded. */
export function createCertificateCells(engines: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * (1 + engines)));
}

/** How long the log waits for every engine to confirm a reload. */
const RELOAD_CONFIRM_MS = 5_000;

export class TlsService {
  private certificateWatch: CertificateWatch | undefined;
  private certificate = "";
  private started = false;

  constructor(
    private readonly tls: TlsConfig,
    readonly cells: Int32Array,
    private readonly wakeEngines: () => void,
    private readonly logger: Logger,
  ) {}

  /** Throws an Error with OpenSSL's reason when the certificate, key or settings do not load. */
  check(): void {
    serverContext(this.tls, false).free();
    this.certificate = describeCertificate(readTlsMaterial(this.tls.cert, this.tls.key).cert);
    this.logger.debug(`TLS certificate ${this.tls.cert}: ${this.certificate}`);
  }

  /** Once the engines listen: watches the files; returns the TLS listeners' labels. */
  start(listeningIps: string[], proxyPort: number | undefined, onFilesChanged: () => void): string[] {
    this.started = true;
    this.certificateWatch = new CertificateWatch([this.tls.cert, this.tls.key], onFilesChanged);
    this.certificateWatch.start();
    return [
      ...listeningIps.map((ip) => `${formatHostPort(ip, this.tls.port)} (TLS)`),
      ...(proxyPort === undefined ? [] : listeningIps.map((ip) => `${formatHostPort(ip, proxyPort)} (TLS, PROXY protocol)`)),
    ];
  }

  get serving(): boolean {
    return this.started;
  }

  /**
   * Loads the certificate and key again; TLS connections already open keep their sessions. A pair that
   * does not load leaves the old one in use, and the log says why.
   */
  reloadCertificate(cause: string): void {
    this.certificateWatch?.settle();
    const file = this.tls.cert;
    let description: string;
    try {
      this.check();
      description = this.certificate;
    } catch (error) {
      this.logger.warn(`${cause}: TLS certificate NOT reloaded from ${file}: ${(error as Error).message}; still serving ${this.certificate}`);
      return;
    }
    const generation = Atomics.add(this.cells, 0, 1) + 1;
    this.wakeEngines();
    void this.confirmed(generation).then((all) => {
      const note = all ? "" : " (not every relay thread has confirmed yet)";
      this.logger.info(`${cause}: TLS certificate reloaded from ${file} (${description}); open TLS connections keep their sessions${note}`);
    });
  }

  private async confirmed(generation: number): Promise<boolean> {
    const deadline = Date.now() + RELOAD_CONFIRM_MS;
    for (;;) {
      let all = true;
      for (let i = 1; i < this.cells.length; i++) if (Atomics.load(this.cells, i) < generation) all = false;
      if (all) return true;
      if (Date.now() > deadline) return false;
      await Bun.sleep(2);
    }
  }

  stop(): void {
    this.certificateWatch?.stop();
  }
}
