/**
 * coturn's --syslog: every log line also goes to the system logger as one datagram on its Unix socket
 * (/dev/log, or --syslog-socket), RFC 3164 format: `<PRI>Mmm dd hh:mm:ss bunturn[pid]: message`, PRI =
 * facility * 8 + severity. A logger that is away (journald restarting) loses lines, never stops the relay:
 * the socket is reconnected on the next line after a failure.
 */
import type { ConsolaReporter, LogObject } from "consola";
import { connectUnixDatagram, libc } from "../../ffi/index.ts";

/** syslog.h severities for consola's levels. */
const SEVERITY: Record<string, number> = { fatal: 2, error: 3, fail: 3, warn: 4, info: 6, success: 6, ready: 6, start: 6, box: 6, log: 6, debug: 7, trace: 7, verbose: 7 };
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** RFC 3164 §4.1.2 TIMESTAMP: local time, day padded with a space. */
function timestamp(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export function syslogLine(facility: number, o: LogObject, message: string, tag = "bunturn"): string {
  const pri = facility * 8 + (SEVERITY[o.type] ?? 6);
  return `<${pri}>${timestamp(o.date)} ${tag}[${process.pid}]: ${message}`;
}

export class SyslogReporter implements ConsolaReporter {
  private fd = -1;
  private readonly encoder = new TextEncoder();

  constructor(private readonly socket: string, private readonly facility: number, private readonly format: (o: LogObject) => string) {
    this.connect();
  }

  /** Whether the logger's socket was reachable at the last attempt. */
  get connected(): boolean {
    return this.fd >= 0;
  }

  private connect(): void {
    try {
      this.fd = connectUnixDatagram(this.socket);
    } catch {
      this.fd = -1;
    }
  }

  log(o: LogObject): void {
    if (this.fd < 0) this.connect();
    if (this.fd < 0) return;
    const bytes = this.encoder.encode(syslogLine(this.facility, o, this.format(o)));
    if (libc.write(this.fd, bytes, bytes.length) < 0) {
      libc.close(this.fd);
      this.fd = -1;
    }
  }

  close(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }
}
