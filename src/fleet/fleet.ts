/**
 * The main thread's part in a fleet of relays (docs/fleet.md): the nonce key every relay shares
 * (./nonce-secret.ts), the heartbeat that shares quota counts and load through Redis (./fleet-quota.ts,
 * ./fleet-load.ts), and coturn's statistics with the usage records (./statsdb.ts). Started before the
 * engines (they are handed the nonce key's and the redirect's shared cells), beating once they run;
 * nothing here is on the hot path, and a Redis outage only narrows what is shared until it is back.
 */
import type { RelayConfig } from "../config/relay-config.ts";
import type { Session } from "../engine/admin-channel.ts";
import { othersTotal } from "../engine/fleet-counts.ts";
import { createFleetRedirect, setFleetTargets } from "../engine/fleet-redirect.ts";
import type { QuotaShared } from "../engine/quota.ts";
import type { Logger } from "../logger.ts";
import type { ExtraMetric } from "../metrics/prometheus.ts";
import type { UsageRecord } from "../metrics/usage.ts";
import type { SessionInfo } from "../turn/sessions.ts";
import { pickTargets, type RelayLoad } from "./fleet-load.ts";
import { FleetQuota, HEARTBEAT_MS } from "./fleet-quota.ts";
import { createNonceSecret, loadFleetNonceSecret, nonceSecretFromFile } from "./nonce-secret.ts";
import { RedisLink } from "./redis-link.ts";
import { StatsDb } from "./statsdb.ts";

/** What the relay says of itself each heartbeat (RelayServer reads its counters). */
export interface LocalLoad {
  allocations: number;
  /** Bytes relayed since start, both ways (the heartbeat turns it into a rate). */
  relayedBytes: number;
  draining: boolean;
}

/** What the fleet asks of the relay: its load, and its live sessions (for the statistics). */
export interface FleetHost {
  load(): LocalLoad;
  sessions(): Promise<Session[]>;
}

/** The longest a relay's start waits for Redis (then it starts with its own nonce key and counts). */
const START_WAIT_MS = 3000;

export class Fleet {
  /** The nonce key, in shared memory: the engines read it for every nonce. */
  readonly nonceSecret = createNonceSecret();
  /** Where the engines send Allocates while full or draining (the least-loaded peer), with --fleet-redis. */
  readonly redirect: Int32Array | undefined;
  /** `--redis-statsdb`: coturn's events and the usage records. */
  private readonly statsdb: StatsDb | undefined;
  private lastBytes = { at: 0, bytes: 0 };
  /** Other live relays at the last heartbeat. */
  private peers = 0;
  private readonly redis: RedisLink | undefined;
  private nonceSecretShared: boolean;
  private quota: FleetQuota | undefined;
  private quotaShared: QuotaShared | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating = false;

  private constructor(private readonly config: RelayConfig, private readonly logger: Logger, private readonly host: FleetHost) {
    const { redis, nonceSecretFile, statsdb } = config.fleet;
    // First what can fail (the file), then the connections.
    if (nonceSecretFile !== undefined) this.nonceSecret.set(nonceSecretFromFile(nonceSecretFile));
    if (statsdb) this.statsdb = new StatsDb(statsdb, config.realm, logger, () => host.sessions());
    if (redis) {
      this.redis = new RedisLink(redis, logger, "fleet", "nonces, quotas and redirects are this relay's own");
      this.redirect = createFleetRedirect();
    }
    this.nonceSecretShared = nonceSecretFile !== undefined || !redis;
  }

  /** Reads the nonce key (from the file, or Redis: one try, bounded, the heartbeat tries again). */
  static async start(config: RelayConfig, logger: Logger, host: FleetHost): Promise<Fleet> {
    const fleet = new Fleet(config, logger, host);
    await fleet.redis?.firstConnection(Math.min(config.fleet.redis!.connectTimeoutMs, START_WAIT_MS));
    await fleet.loadNonceSecret();
    return fleet;
  }

  /** Whether the nonce key is the fleet's (always, without Redis: the file's or this relay's own). */
  get sharedNonceSecret(): boolean {
    return this.nonceSecretShared;
  }

  /** Starts the heartbeat with the engines' quota counts (shared memory). */
  beat(quota: QuotaShared): void {
    if (!this.redis) return;
    this.quotaShared = quota;
    this.quota = new FleetQuota(this.redis, this.config.realm, quota, this.logger);
    this.logger.info(`fleet: relay ${this.quota.relayId} shares quotas${this.config.fleet.nonceSecretFile === undefined ? " and the nonce secret" : ""} through ${this.config.fleet.redis!.display}`);
    void this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
  }

  private async heartbeat(): Promise<void> {
    if (this.beating) return; // the last one still waits on Redis
    this.beating = true;
    try {
      await this.loadNonceSecret();
      if (this.quota) {
        const others = await this.quota.beat(this.ownLoad(this.host.load()));
        this.peers = others?.length ?? 0;
        setFleetTargets(this.redirect!, others ? pickTargets(others) : {});
      }
    } finally {
      this.beating = false;
    }
  }

  /** Once the engines run: the statistics start (a bounded wait for their Redis). */
  async startStatistics(): Promise<void> {
    await this.statsdb?.start();
  }

  /** An allocation ended: its usage record and end events go to the statistics Redis, if any. */
  ended(engine: number, record: UsageRecord, session: SessionInfo): void {
    this.statsdb?.ended(engine, record, session);
  }

  /** For /metrics: --fleet-redis's and --redis-statsdb's. */
  metrics(): ExtraMetric[] {
    const stats = this.statsdb?.metrics() ?? [];
    if (!this.redis) return stats;
    return [
      ...stats,
      { name: "bunturn_fleet_redis_up", kind: "gauge", help: "1 while the fleet's Redis (--fleet-redis) answers; 0 while this relay counts quotas alone and redirects by its static lists only", value: this.redis.up ? 1 : 0 },
      { name: "bunturn_fleet_redis_outages_total", kind: "counter", help: "Times the fleet's Redis became unreachable", value: this.redis.outages },
      { name: "bunturn_fleet_peers", kind: "gauge", help: "Other live relays of the realm seen at the last heartbeat", value: this.peers },
      { name: "bunturn_fleet_other_allocations", kind: "gauge", help: "Allocations on the other relays as the engines count them for --total-quota (the last heartbeat's)", value: this.quotaShared ? othersTotal(this.quotaShared.fleet) : 0 },
      { name: "bunturn_fleet_nonce_secret_shared", kind: "gauge", help: "1 when nonces are keyed with the fleet's secret (file or Redis); 0 while with this relay's own", value: this.nonceSecretShared ? 1 : 0 },
    ];
  }

  private ownLoad(local: LocalLoad): RelayLoad {
    const now = Date.now();
    const seconds = (now - this.lastBytes.at) / 1000;
    const bps = this.lastBytes.at === 0 || seconds <= 0 ? 0 : Math.round((local.relayedBytes - this.lastBytes.bytes) / seconds);
    this.lastBytes = { at: now, bytes: local.relayedBytes };
    const { capacity, addresses, port, tlsPort } = this.config.fleet;
    return { allocations: local.allocations, bps, capacity, draining: local.draining, addresses, port, ...(tlsPort ? { tlsPort } : {}) };
  }

  /** Offers this relay's key and takes the fleet's (nothing with --nonce-secret-file); kept when Redis fails. */
  private async loadNonceSecret(): Promise<void> {
    if (this.config.fleet.nonceSecretFile !== undefined || !this.redis) return;
    if (await loadFleetNonceSecret(this.redis, this.config.realm, this.nonceSecret)) this.nonceSecretShared = true;
  }

  /** After the engines stopped (their last usage records are in): leaves the fleet, flushes the records. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.quota?.leave();
    this.redis?.close();
    await this.statsdb?.stop();
  }
}
