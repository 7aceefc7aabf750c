/**
 * One usage record per allocation, written when it ends (expiry, Refresh 0, its connection closing, an
 * operator's kill, shutdown): who used the relay, from where, for how long, and what it relayed each
 * way, for billing. One JSON object on one line: to --usage-log FILE when set (appended; each record
 * opens the file, so a rotated file is picked up without a signal), else to the log as "usage {...}".
 */
import { appendFileSync } from "node:fs";
import type { SessionInfo } from "../turn/sessions.ts";
import type { Logger } from "../logger.ts";

export interface UsageRecord {
  id: string;
  user: string | null;
  realm: string;
  client: string;
  transport: "udp" | "tcp" | "tls" | "dtls";
  relays: string[];
  /** ISO 8601 (UTC). */
  start: string;
  end: string;
  durationMs: number;
  bytesToPeer: number;
  packetsToPeer: number;
  bytesToClient: number;
  packetsToClient: number;
}

export function usageRecord(engine: number, session: SessionInfo, endedAt: number): UsageRecord {
  return {
    id: `${engine}-${session.serial}`,
    user: session.user,
    realm: session.realm,
    client: session.client,
    transport: session.transport,
    relays: session.relays,
    start: new Date(session.startedAt).toISOString(),
    end: new Date(endedAt).toISOString(),
    durationMs: Math.max(0, endedAt - session.startedAt),
    bytesToPeer: session.bytesToPeer,
    packetsToPeer: session.packetsToPeer,
    bytesToClient: session.bytesToClient,
    packetsToClient: session.packetsToClient,
  };
}

export class UsageLog {
  private failedAt = 0;
  constructor(private readonly logger: Logger, private readonly file: string | undefined) {}

  write(record: UsageRecord): void {
    const line = JSON.stringify(record);
    if (this.file === undefined) return this.logger.info(`usage ${line}`);
    try {
      appendFileSync(this.file, `${line}\n`);
    } catch (error) {
      // The record is not lost: it goes to the log instead, with why (once a minute at most).
      const now = Date.now();
      if (now - this.failedAt > 60_000) this.logger.warn(`--usage-log ${this.file}: ${(error as Error).message}; usage records go to the log`);
      this.failedAt = now;
      this.logger.info(`usage ${line}`);
    }
  }
}
