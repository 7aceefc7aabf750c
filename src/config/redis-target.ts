/**
 * Where a Redis server is, from coturn's connection string (`host=10.0.0.5 port=6379 dbname=2
 * password=... connect_timeout=30`, coturn's dbd_redis_conninfo key names) or a redis:// URL, as the
 * URL Bun's RedisClient takes. Checked once at start, so a typo is a ConfigError, not a silent default.
 */
import { ConfigError } from "./config-error.ts";

export interface RedisTarget {
  /** redis://[[USER]:PASSWORD@]HOST:PORT/DB for Bun's RedisClient. */
  url: string;
  /** How long a connection attempt may take, in ms (coturn's connect_timeout is in seconds). */
  connectTimeoutMs: number;
  /** The same, with the password hidden, for log lines. */
  display: string;
}

const HOST = ["host", "ip", "addr", "ipaddr", "hostaddr"];
const DB = ["dbname", "db", "database"];
const USER = ["user", "uname", "name", "username"];
const PASSWORD = ["password", "pwd", "passwd", "secret"];
const PORT = ["port", "p"];
const TIMEOUT = ["connect_timeout", "timeout"];

export function parseRedisTarget(text: string, option: string): RedisTarget {
  const given = text.trim();
  if (given === "") throw new ConfigError(`--${option} needs a Redis address`);
  let host = "127.0.0.1";
  let port = 6379;
  let db = 0;
  let user = "";
  let password = "";
  let timeoutSeconds = 5;
  if (/^rediss?:\/\//.test(given)) {
    let url: URL;
    try {
      url = new URL(given);
    } catch {
      throw new ConfigError(`--${option}: '${given}' is not a redis:// URL`);
    }
    if (url.protocol === "rediss:") throw new ConfigError(`--${option}: TLS to Redis (rediss://) is not supported`);
    host = url.hostname.replace(/^\[(.*)\]$/, "$1") || host;
    port = url.port === "" ? port : Number(url.port);
    db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
    user = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } else {
    for (const pair of given.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new ConfigError(`--${option}: '${pair}' is not KEY=VALUE (coturn's Redis connection string)`);
      const key = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (HOST.includes(key)) host = value;
      else if (DB.includes(key)) db = Number(value);
      else if (USER.includes(key)) user = value;
      else if (PASSWORD.includes(key)) password = value;
      else if (PORT.includes(key)) port = Number(value);
      else if (TIMEOUT.includes(key)) timeoutSeconds = Number(value);
      else throw new ConfigError(`--${option}: unknown key '${key}' (coturn's keys: host, port, dbname, user, password, connect_timeout)`);
    }
  }
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new ConfigError(`--${option}: port '${port}' is not 1-65535`);
  if (!(Number.isInteger(db) && db >= 0)) throw new ConfigError(`--${option}: database '${db}' is not a number`);
  if (!(Number.isFinite(timeoutSeconds) && timeoutSeconds > 0)) timeoutSeconds = 5;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const auth = password === "" && user === "" ? "" : `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`;
  const shown = password === "" && user === "" ? "" : `${encodeURIComponent(user)}:***@`;
  return {
    url: `redis://${auth}${hostPart}:${port}/${db}`,
    connectTimeoutMs: Math.round(timeoutSeconds * 1000),
    display: `redis://${shown}${hostPart}:${port}/${db}`,
  };
}
