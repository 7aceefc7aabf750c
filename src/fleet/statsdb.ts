/**
 * coturn's `redis-statsdb` (turndb/schema.stats.redis), plus each allocation's usage record, written to
 * Redis from the main thread (docs/fleet.md):
 *
 * - Status: `turn/realm/R/user/U/allocation/ID/status` is set to "new lifetime=..., type=..., remote=...,
 *   ssl=..., cipher=..." (then "refreshed ..."; lifetime: the seconds left when seen) and published on the channel of the same name; at the end
 *   it is deleted and "deleted" is published. bunturn reads these from the engines every POLL_MS
 *   (coturn: at once), and gives the key an expiry (lifetime + a minute), so a crashed relay's keys go.
 * - Traffic: `.../traffic` and `.../traffic/peer` are published every POLL_MS with what moved since the
 *   last ("rcvp=, rcvb=, sentp=, sentb=": received from and sent to the client, or the peer), and
 *   `.../total_traffic` and `.../total_traffic/peer` once at the end. Best effort, as in coturn.
 * - Usage records (src/metrics/usage.ts, plus the relay and a fleet-wide id): appended to the stream
 *   `bunturn/usage/realm/R` (consumers: XREAD or XREADGROUP) and published on the channel of the same
 *   name. These are never dropped for a Redis outage: each waits in a queue of at most USAGE_QUEUE_LIMIT
 *   and is retried every RETRY_MS until Redis takes it; one script writes the record and its end events
 *   together, guarded by a per-record marker, so a retry after a lost reply never writes it twice. Past
 *   the limit the oldest are dropped from the queue (said in the log; every record is in the usage log too).
 *
 * ID is this process's random token, the engine and the allocation's serial (unique across the fleet).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { RedisTarget } from "../config/redis-target.ts";
import type { Session } from "../engine/admin-channel.ts";
import type { UsageRecord } from "../metrics/usage.ts";
import type { SessionInfo } from "../turn/sessions.ts";
import type { Logger } from "../logger.ts";
import { RedisLink } from "./redis-link.ts";
import type { ExtraMetric } from "../metrics/prometheus.ts";

/** Usage records waiting for Redis at most (about 0.5 KB each: 50 MB at the bound). */
export const USAGE_QUEUE_LIMIT = 100_000;
export const POLL_MS = 5000;
export const RETRY_MS = 1000;
/** The longest a relay's start waits for Redis (records queue meanwhile). */
const START_WAIT_MS = 3000;
/** How long a record's marker stops a second write of it (retries come within minutes). */
const MARKER_SECONDS = 86400;
/** Records written at once (Bun pipelines them on the one connection). */
const BATCH = 64;

/** Writes a record once: marker, stream, status deleted, end events. KEYS: marker, stream, status. */
const END_SCRIPT = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[7]) then return 0 end
redis.call('XADD', KEYS[2], '*', 'record', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', KEYS[3], 'deleted')
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`;

interface Counts {
  packetsToPeer: number;
  bytesToPeer: number;
  packetsToClient: number;
  bytesToClient: number;
}

/** coturn's traffic line: from the client's side (received = towards the peer), or the peer's. */
function traffic(c: Counts, side: "client" | "peer"): string {
  return side === "client"
    ? `rcvp=${c.packetsToPeer}, rcvb=${c.bytesToPeer}, sentp=${c.packetsToClient}, sentb=${c.bytesToClient}`
    : `rcvp=${c.packetsToClient}, rcvb=${c.bytesToClient}, sentp=${c.packetsToPeer}, sentb=${c.bytesToPeer}`;
}

interface Pending {
  record: UsageRecord & { relayHost: string };
  session: SessionInfo;
  allocation: string;
}

export class StatsDb {
  private readonly redis: RedisLink;
  private readonly token = randomBytes(4).toString("hex");
  private readonly host = hostname();
  private readonly queue: Pending[] = [];
  /** Live allocations as last seen: their expiry and counts (to tell a refresh, and traffic since). */
  private readonly seen = new Map<string, Counts & { expiresAt: number }>();
  private dropped = 0;
  private written = 0;
  private droppedLoggedAt = 0;
  private flushing = false;
  private polling = false;
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];

  constructor(target: RedisTarget, private readonly realm: string, private readonly logger: Logger, private readonly sessions: () => Promise<Session[]>) {
    this.redis = new RedisLink(target, logger, "redis-statsdb", `usage records wait in memory (up to ${USAGE_QUEUE_LIMIT})`);
  }

  async start(): Promise<void> {
    await this.redis.firstConnection(START_WAIT_MS);
    this.timers.push(setInterval(() => void this.flush(), RETRY_MS), setInterval(() => void this.poll(), POLL_MS));
  }

  /** Usage records not yet in Redis. */
  get waiting(): number {
    return this.queue.length;
  }

  private allocationId(engine: number, serial: number): string {
    return `${this.token}-${engine}-${serial}`;
  }

  private key(user: string | null, allocation: string, what: string): string {
    return `turn/realm/${this.realm}/user/${user ?? ""}/allocation/${allocation}/${what}`;
  }

  /** An allocation ended (the usage event): its record and end events go to Redis, now or when it is back. */
  ended(engine: number, record: UsageRecord, session: SessionInfo): void {
    const allocation = this.allocationId(engine, session.serial);
    this.seen.delete(allocation);
    if (this.queue.length >= USAGE_QUEUE_LIMIT) {
      this.queue.shift();
      this.dropped++;
      const now = Date.now();
      if (now - this.droppedLoggedAt > 60_000) {
        this.droppedLoggedAt = now;
        this.logger.warn(`redis-statsdb: ${this.dropped} usage records dropped from the full queue (${USAGE_QUEUE_LIMIT}) so far; they are in the usage log`);
      }
    }
    this.queue.push({ record: { ...record, id: allocation, relayHost: this.host }, session, allocation });
    void this.flush();
  }

  /** Writes waiting records, a batch at a time, until the queue is empty or Redis fails. */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.slice(0, BATCH);
        const results = await Promise.allSettled(batch.map((p) => this.writeEnd(p)));
        batch.forEach((p, i) => {
          if (results[i]!.status === "rejected") return;
          this.written++;
          const at = this.queue.indexOf(p); // near the head (a full queue may have shed some meanwhile)
          if (at >= 0) this.queue.splice(at, 1);
        });
        if (results.some((r) => r.status === "rejected")) return; // the next RETRY_MS tick tries again
      }
    } finally {
      this.flushing = false;
    }
  }

  private writeEnd(p: Pending): Promise<unknown> {
    const { session, allocation } = p;
    const stream = `bunturn/usage/realm/${this.realm}`;
    return this.redis.send("EVAL", [
      END_SCRIPT, "3",
      `${stream}/written/${allocation}`, stream, this.key(session.user, allocation, "status"),
      JSON.stringify(p.record),
      this.key(session.user, allocation, "total_traffic"), traffic(session, "client"),
      this.key(session.user, allocation, "total_traffic/peer"), traffic(session, "peer"),
      "", String(MARKER_SECONDS),
    ]);
  }

  /** For /metrics. */
  metrics(): ExtraMetric[] {
    return [
      { name: "bunturn_statsdb_up", kind: "gauge", help: "1 while the statistics Redis (--redis-statsdb) answers", value: this.redis.up ? 1 : 0 },
      { name: "bunturn_usage_records_queued", kind: "gauge", help: `Usage records waiting for the statistics Redis (at most ${USAGE_QUEUE_LIMIT})`, value: this.queue.length },
      { name: "bunturn_usage_records_written_total", kind: "counter", help: "Usage records written to the statistics Redis", value: this.written },
      { name: "bunturn_usage_records_dropped_total", kind: "counter", help: "Usage records dropped from the full queue (they are in the usage log)", value: this.dropped },
    ];
  }

  /** Status and traffic of the live allocations (best effort: a failed write is tried at the next poll). */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = Date.now();
      const live = new Set<string>();
      for (const s of await this.sessions()) {
        const allocation = this.allocationId(s.engine, s.serial);
        live.add(allocation);
        const last = this.seen.get(allocation);
        const commands: Array<[string, string[]]> = [];
        if (!last || s.expiresAt > last.expiresAt) {
          const lifetime = Math.max(1, Math.round((s.expiresAt - now) / 1000));
          const ssl = s.transport === "tls" ? "TLS" : s.transport === "dtls" ? "DTLS" : "NONE";
          const status = `${last ? "refreshed" : "new"} lifetime=${lifetime}, type=${s.transport.toUpperCase()}, remote=${s.client}, ssl=${ssl}, cipher=${ssl}`;
          const key = this.key(s.user, allocation, "status");
          commands.push(["SET", [key, status, "EX", String(lifetime + 60)]], ["PUBLISH", [key, status]]);
        }
        const since: Counts = {
          packetsToPeer: s.packetsToPeer - (last?.packetsToPeer ?? 0),
          bytesToPeer: s.bytesToPeer - (last?.bytesToPeer ?? 0),
          packetsToClient: s.packetsToClient - (last?.packetsToClient ?? 0),
          bytesToClient: s.bytesToClient - (last?.bytesToClient ?? 0),
        };
        if (since.packetsToPeer + since.packetsToClient > 0) {
          commands.push(["PUBLISH", [this.key(s.user, allocation, "traffic"), traffic(since, "client")]]);
          commands.push(["PUBLISH", [this.key(s.user, allocation, "traffic/peer"), traffic(since, "peer")]]);
        }
        if (commands.length === 0) continue;
        await Promise.all(commands.map(([c, args]) => this.redis.send(c, args)));
        this.seen.set(allocation, { expiresAt: s.expiresAt, packetsToPeer: s.packetsToPeer, bytesToPeer: s.bytesToPeer, packetsToClient: s.packetsToClient, bytesToClient: s.bytesToClient });
      }
      for (const allocation of this.seen.keys()) if (!live.has(allocation)) this.seen.delete(allocation);
    } catch {
      /* Redis down or an engine slow to answer: the next poll catches up */
    } finally {
      this.polling = false;
    }
  }

  /** Stops the timers after one last try (bounded) to write what waits; says what could not be. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await Promise.race([this.flush(), Bun.sleep(2000)]);
    if (this.queue.length > 0) this.logger.warn(`redis-statsdb: ${this.queue.length} usage records not written to Redis at stop; they are in the usage log`);
    this.redis.close();
  }
}
