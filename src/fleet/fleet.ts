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
import { createNonceSecret, loadFleetNonceSecret, nonceSecretFromFile } from "./nonce-secret.ts";
import { RedisLink } from "./redis-link.ts";

/** The longest a relay's start waits for Redis (then it starts with its own nonce key and counts). */
const START_WAIT_MS = 3000;

export class Fleet {
  /** The nonce key, in shared memory: the engines read it for every nonce. */
  readonly nonceSecret = createNonceSecret();
  private readonly redis: RedisLink | undefined;
  private nonceSecretShared: boolean;
  private quota: FleetQuota | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating = false;

  private constructor(private readonly config: RelayConfig, private readonly logger: Logger) {
    const { redis, nonceSecretFile } = config.fleet;
    if (redis) this.redis = new RedisLink(redis, logger, "fleet", "nonces and quotas are this relay's own");
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
  beat(quota: QuotaShared): void {
    if (!this.redis) return;
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
      await this.quota?.beat();
    } finally {
      this.beating = false;
    }
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
