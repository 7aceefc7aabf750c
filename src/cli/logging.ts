/**
 * coturn's logging options on top of consola: standard output (consola's own reporter for text, one
 * JSON object per line for `--log-format json`), a log file (`--log-file`, appended, reopened on SIGHUP
 * so logrotate can move it), `--no-stdout-log` for the file alone, and the system log (`--syslog`, syslog.ts).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { formatWithOptions } from "node:util";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";
import type { LogConfig } from "../config/resolve.ts";
import { SyslogReporter } from "./syslog.ts";

const LEVEL_NAMES: Record<string, string> = {
  fatal: "fatal", error: "error", fail: "error", warn: "warn", info: "info", success: "info", ready: "info",
  start: "info", box: "info", log: "info", debug: "debug", trace: "trace", verbose: "trace", silent: "info",
};

function levelName(o: LogObject): string {
  return LEVEL_NAMES[o.type] ?? "info";
}

export function messageOf(o: LogObject): string {
  const parts = o.message !== undefined ? [o.message, ...o.args] : o.args;
  return parts.map((a) => (typeof a === "string" ? a : formatWithOptions({ colors: false, breakLength: Infinity }, a))).join(" ");
}

/** One log line as JSON: `{"time":"<ISO 8601>","level":"info","message":"..."}`. */
export function jsonLine(o: LogObject): string {
  return JSON.stringify({ time: o.date.toISOString(), level: levelName(o), message: messageOf(o) }) + "\n";
}

/** One log line as text for files: `<ISO 8601> <level>: message`. */
export function textLine(o: LogObject): string {
  return `${o.date.toISOString()} ${levelName(o)}: ${messageOf(o)}\n`;
}

/** Appends lines to a file with plain write(2) calls; reopen() after logrotate moved it. */
class FileReporter implements ConsolaReporter {
  private fd: number;

  constructor(readonly path: string, private readonly format: (o: LogObject) => string) {
    this.fd = FileReporter.openFile(path);
  }

  static openFile(path: string): number {
    try {
      return openSync(path, "a", 0o640);
    } catch (error) {
      throw new Error(`cannot open log file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }

  log(o: LogObject): void {
    try {
      writeSync(this.fd, this.format(o));
    } catch {
      // A full disk must not stop the relay; nothing better to do with a log line that cannot be written.
    }
  }

  reopen(): void {
    const fd = FileReporter.openFile(this.path);
    const old = this.fd;
    this.fd = fd;
    closeSync(old);
  }

  close(): void {
    closeSync(this.fd);
  }
}

const jsonStdout: ConsolaReporter = {
  log(o) {
    process.stdout.write(jsonLine(o));
  },
};

export interface Logging {
  logger: ConsolaInstance;
  /** Reopens the log file (SIGHUP); a no-op without one. */
  reopen(): void;
  close(): void;
}

/** Builds the logger the options ask for. Throws an Error naming the file when it cannot be opened. */
export function createLogging(config: LogConfig, verbose: boolean): Logging {
  const logger = createConsola({ level: verbose ? 4 : 3 });
  const reporters: ConsolaReporter[] = [];
  if (config.stdout) {
    if (config.format === "json") reporters.push(jsonStdout);
    else reporters.push(...logger.options.reporters);
  }
  let file: FileReporter | undefined;
  if (config.file !== undefined) {
    file = new FileReporter(config.file, config.format === "json" ? jsonLine : textLine);
    reporters.push(file);
  }
  let syslog: SyslogReporter | undefined;
  if (config.syslog !== undefined) {
    syslog = new SyslogReporter(config.syslog.socket, config.syslog.facility, messageOf);
    reporters.push(syslog);
  }
  logger.setReporters(reporters);
  if (syslog !== undefined && !syslog.connected) logger.warn(`--syslog: cannot reach ${config.syslog!.socket} now; will retry with each line`);
  return {
    logger,
    reopen: () => file?.reopen(),
    close: () => {
      file?.close();
      syslog?.close();
    },
  };
}
