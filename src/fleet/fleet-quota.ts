/**
 * --user-quota and --total-quota across a fleet (docs/fleet.md). Every heartbeat each relay publishes
 * its own allocations (in total and per user hash: the engines' user table keys users by a 64-bit hash,
 * src/engine/user-table.ts, the same on every relay) under its own key with a time to live, and sums
 * what the others published into shared memory (src/engine/fleet-counts.ts), where the engines add it
 * to their own counts. A relay that crashes stops refreshing its key, so its counts age out within
 * RELAY_TTL_MS; while Redis is unreachable the others' counts are dropped and each relay counts alone.
 *
 * Keys (realm R): `bunturn/fleet/realm/R/relay/ID` (JSON, expires after RELAY_TTL_MS) and the sorted
 * set `bunturn/fleet/realm/R/relays` (ID scored by its last heartbeat, pruned by the same age).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { localCounts, type QuotaShared } from "../engine/quota.ts";
import { publishOthers } from "../engine/fleet-counts.ts";
import type { UserHash } from "../engine/user-table.ts";
import type { RedisLink } from "./redis-link.ts";
import type { Logger } from "../logger.ts";
import type { RelayLoad } from "./fleet-load.ts";

export const HEARTBEAT_MS = 1000;
/** Three missed heartbeats and a relay's allocations no longer count. */
export const RELAY_TTL_MS = 3 * HEARTBEAT_MS;

/** What one relay publishes each heartbeat. */
export interface RelayBeat {
  total: number;
  /** User hash ("high.low", hexadecimal) -> allocations. */
  users: Record<string, number>;
  /** For load-aware redirects (./fleet-load.ts). */
  load: RelayLoad;
}

function hashField(key: UserHash): string {
  return `${(key.high >>> 0).toString(16)}.${(key.low >>> 0).toString(16)}`;
}

function parseHashField(field: string): UserHash | undefined {
  const m = /^([0-9a-f]{1,8})\.([0-9a-f]{1,8})$/.exec(field);
  return m ? { high: parseInt(m[1]!, 16) | 0, low: parseInt(m[2]!, 16) | 0 } : undefined;
}

export class FleetQuota {
  /** This relay's name in the fleet's keys: host, process and a random tail (a restart is a new relay). */
  readonly relayId = `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
  private tableFullLogged = false;

  constructor(
    private readonly redis: RedisLink,
    private readonly realm: string,
    private readonly quota: QuotaShared,
    private readonly logger: Logger,
  ) {}

  private get relaysKey(): string {
    return `bunturn/fleet/realm/${this.realm}/relays`;
  }

  private relayKey(id: string): string {
    return `bunturn/fleet/realm/${this.realm}/relay/${id}`;
  }

  /**
   * One heartbeat: publish ours, then take in the others' (or only ours when Redis fails). Resolves to
   * the others' loads, or undefined when Redis failed.
   */
  async beat(load: RelayLoad, now = Date.now()): Promise<RelayLoad[] | undefined> {
    const local = localCounts(this.quota);
    const beat: RelayBeat = { total: local.total, users: {}, load };
    for (const [key, count] of local.users) beat.users[hashField(key)] = count;
    try {
      await this.redis.send("SET", [this.relayKey(this.relayId), JSON.stringify(beat), "PX", String(RELAY_TTL_MS)]);
      await this.redis.send("ZADD", [this.relaysKey, String(now), this.relayId]);
      await this.redis.send("ZREMRANGEBYSCORE", [this.relaysKey, "-inf", String(now - RELAY_TTL_MS)]);
      const ids = ((await this.redis.send("ZRANGE", [this.relaysKey, "0", "-1"])) as string[]).filter((id) => id !== this.relayId);
      const beats = ids.length === 0 ? [] : ((await this.redis.send("MGET", ids.map((id) => this.relayKey(id)))) as Array<string | null>);
      return this.takeIn(beats);
    } catch {
      publishOthers(this.quota.fleet, 0, []);
      return undefined;
    }
  }

  /** Sums the other relays' beats into the engines' shared memory; returns their loads. */
  private takeIn(beats: Array<string | null>): RelayLoad[] {
    const loads: RelayLoad[] = [];
    let total = 0;
    const users = new Map<string, number>();
    for (const text of beats) {
      if (text === null) continue; // expired: a relay that stopped beating
      let beat: RelayBeat;
      try {
        beat = JSON.parse(text) as RelayBeat;
      } catch {
        continue;
      }
      total += Number(beat.total) || 0;
      if (beat.load) loads.push(beat.load);
      for (const [field, count] of Object.entries(beat.users ?? {})) users.set(field, (users.get(field) ?? 0) + (Number(count) || 0));
    }
    const entries: Array<[UserHash, number]> = [];
    for (const [field, count] of users) {
      const key = parseHashField(field);
      if (key) entries.push([key, count]);
    }
    const dropped = publishOthers(this.quota.fleet, total, entries);
    if (dropped > 0 && !this.tableFullLogged) {
      this.tableFullLogged = true;
      this.logger.warn(`fleet quotas: ${dropped} of the other relays' users did not fit the shared table; they count only on their own relay`);
    }
    return loads;
  }

  /** Leaves the fleet at once (a clean stop), instead of after RELAY_TTL_MS. */
  async leave(): Promise<void> {
    await this.redis.send("DEL", [this.relayKey(this.relayId)]).catch(() => {});
    await this.redis.send("ZREM", [this.relaysKey, this.relayId]).catch(() => {});
  }
}
