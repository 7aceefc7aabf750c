/**
 * Redis addresses (src/config/redis-target.ts): coturn's connection string with its key names, and
 * redis:// URLs, both to the URL Bun's RedisClient takes; mistakes are one ConfigError line.
 */
import { expect, test } from "bun:test";
import { parseRedisTarget } from "../../src/config/redis-target.ts";
import { ConfigError } from "../../src/config/config-error.ts";

test("coturn's connection string, its synonyms, and the password hidden in what is logged", () => {
  const t = parseRedisTarget("ip=10.0.0.5 dbname=2 password=s3cret port=6380 connect_timeout=30", "redis-userdb");
  expect(t.url).toBe("redis://:s3cret@10.0.0.5:6380/2");
  expect(t.display).toBe("redis://:***@10.0.0.5:6380/2");
  expect(t.connectTimeoutMs).toBe(30000);
  expect(parseRedisTarget("host=::1 db=1 pwd=x p=7000", "x").url).toBe("redis://:x@[::1]:7000/1");
  expect(parseRedisTarget("hostaddr=127.0.0.1", "x").url).toBe("redis://127.0.0.1:6379/0");
});

test("redis:// URLs", () => {
  expect(parseRedisTarget("redis://127.0.0.1:6390", "fleet-redis").url).toBe("redis://127.0.0.1:6390/0");
  expect(parseRedisTarget("redis://u:p%40ss@redis.internal/3", "fleet-redis").url).toBe("redis://u:p%40ss@redis.internal:6379/3");
});

test("mistakes are ConfigErrors naming the option", () => {
  expect(() => parseRedisTarget("", "fleet-redis")).toThrow(ConfigError);
  expect(() => parseRedisTarget("host=a colour=blue", "redis-statsdb")).toThrow(/--redis-statsdb: unknown key 'colour'/);
  expect(() => parseRedisTarget("host=a port=99999", "fleet-redis")).toThrow(/port/);
  expect(() => parseRedisTarget("rediss://a", "fleet-redis")).toThrow(/TLS/);
  expect(() => parseRedisTarget("justahost", "fleet-redis")).toThrow(/KEY=VALUE/);
});
