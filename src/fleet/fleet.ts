/**
 * The main thread's part in a fleet of relays (docs/fleet.md): the nonce key every relay shares
 * (./nonce-secret.ts) and the heartbeat that shares quota counts (./fleet-quota.ts) through Redis.
 * Started before the engines (they are handed the nonce key's shared cells), beating once they run;
 * nothing here is on the hot path, and a Redis outage only narrows what is shared until it is back.
 */
import type { RelayConfig } from "../config/relay-config.ts";
import type { QuotaShared } from "../engine/quota.ts";
import type { Logger } from "../logger.ts";
import { FleetQuota, HEARTBEAT_MS } from "./fleet-quota.ts";
import { pickTargets } from "./fleet-load.ts";
import { createFleetRedirect, setFleetTargets } from "../engine/fleet-redirect.ts";
import { othersTotal } from "../engine/fleet-counts.ts";

/** What the relay says of itself each heartbeat (RelayServer reads its counters). */
export interface LocalLoad {
  allocations: number;
  /** Bytes relayed since start, both ways (the heartbeat turns it into a rate). */
  relayedBytes: number;
  draining: boolean;
}
import { createNonceSecret, loadFleetNonceSecret, nonceSecretFromFile } from "./nonce-secret.ts";
import { RedisLink } from "./redis-link.ts";
import type { RelayLoad } from "./fleet-load.ts";
import type { ExtraMetric } from "../metrics/prometheus.ts";

/** The longest a relay's start waits for Redis (then it starts with its own nonce key and counts). */
const START_WAIT_MS = 3000;

export class Fleet {
  /** The nonce key, in shared memory: the engines read it for every nonce. */
  readonly nonceSecret = createNonceSecret();
  /** Where the engines send Allocates while full or draining (the least-loaded peer), with --fleet-redis. */
  readonly redirect: Int32Array | undefined;
  private load: (() => LocalLoad) | undefined;
  private lastBytes = { at: 0, bytes: 0 };
  /** Other live relays at the last heartbeat. */
  private peers = 0;
  private readonly redis: RedisLink | undefined;
  private nonceSecretShared: boolean;
  private quota: FleetQuota | undefined;
  private quotaShared: QuotaShared | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating = false;

  private constructor(private readonly config: RelayConfig, private readonly logger: Logger) {
    const { redis, nonceSecretFile } = config.fleet;
    if (redis) {
      this.redis = new RedisLink(redis, logger, "fleet", "nonces, quotas and redirects are this relay's own");
      this.redirect = createFleetRedirect();
    }
    if (nonceSecretFile !== undefined) this.nonceSecret.set(nonceSecretFromFile(nonceSecretFile));
    this.nonceSecretShared = nonceSecretFile !== undefined || !redis;
  }

  /** Reads the nonce key (from the file, or Redis: one try, bounded, the heartbeat tries again). */
  static async start(config: RelayConfig, logger: Logger): Promise<Fleet> {
    const fleet = new Fleet(config, logger);
    await fleet.redis?.firstConnection(Math.min(config.fleet.redis!.connectTimeoutMs, START_WAIT_MS));
    await fleet.loadNonceSecret();
    return fleet;
  }

  /** Whether the nonce key is the fleet's (always, without Redis: the file's or this relay's own). */
  get sharedNonceSecret(): boolean {
    return this.nonceSecretShared;
  }

  /** Starts the heartbeat once the engines run with `quota`'s shared memory. */
  beat(quota: QuotaShared, load: () => LocalLoad): void {
    if (!this.redis) return;
    this.load = load;
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
      if (!this.nonceSecretShared) await this.loadNonceSecret();
      if (this.quota && this.load) {
        const others = await this.quota.beat(this.ownLoad(this.load()));
        this.peers = others?.length ?? 0;
        setFleetTargets(this.redirect!, others ? pickTargets(others) : {});
      }
    } finally {
      this.beating = false;
    }
  }

  /** For /metrics, with --fleet-redis. */
  metrics(): ExtraMetric[] {
    if (!this.redis) return [];
    return [
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

  private async loadNonceSecret(): Promise<void> {
    if (this.nonceSecretShared || !this.redis) return;
    this.nonceSecretShared = await loadFleetNonceSecret(this.redis, this.config.realm, this.nonceSecret);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.quota?.leave();
    this.redis?.close();
  }
}
