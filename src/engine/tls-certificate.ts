/**
 * The TLS certificate and key as the main thread checks them (tls-service.ts): read from disk as text at
 * start and at each reload, described for the log, and watched for changes. A renewal tool (certbot,
 * acme.sh) replaces the files, often by moving a symbolic link; the watch compares what stat() of the
 * followed path says (inode, size, modification time) every few seconds, so a renewal is noticed
 * whichever way it was written, and two polls see a half-written pair only as one failed reload.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";

export interface TlsMaterial {
  cert: string;
  key: string;
}

/** Reads both files; throws an Error naming the file that could not be read. */
export function readTlsMaterial(certPath: string, keyPath: string): TlsMaterial {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new Error(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { cert: read(certPath, "certificate"), key: read(keyPath, "private key") };
}

/** "subject CN=…, valid until …, SHA-256 AB:…" for the log, or what is wrong with the first certificate. */
export function describeCertificate(pem: string): string {
  try {
    const c = new X509Certificate(pem);
    return `subject ${c.subject.replace(/\n/g, ", ")}, valid until ${c.validTo}, SHA-256 ${c.fingerprint256}`;
  } catch (error) {
    return `unparsable certificate (${(error as Error).message})`;
  }
}

/** How often the files are looked at. */
export const CERTIFICATE_POLL_MS = 5_000;

/** Calls `changed` when either file's inode, size or modification time differs from the last look. */
export class CertificateWatch {
  private last: string;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly paths: readonly string[], private readonly changed: () => void, private readonly intervalMs = CERTIFICATE_POLL_MS) {
    this.last = this.signature();
  }

  start(): void {
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref?.();
  }

  /** Takes the files as they are now as the known state (after a reload from a signal, say). */
  settle(): void {
    this.last = this.signature();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const now = this.signature();
    if (now === this.last) return;
    this.last = now;
    this.changed();
  }

  private signature(): string {
    return this.paths.map((path) => {
      try {
        const s = statSync(path);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return "missing";
      }
    }).join("|");
  }
}
