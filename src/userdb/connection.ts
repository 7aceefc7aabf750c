/**
 * coturn's connection strings for its network user databases, read into Bun.SQL's options:
 * - `--psql-userdb` (`-e`, also `--sql-userdb`): libpq's, either a URI (`postgresql://user:pw@host:port/db`)
 *   or `key=value` pairs (`host=... dbname=... user=... password=... connect_timeout=...`, values
 *   single-quoted when they hold spaces), as coturn hands it to PQconnectdb.
 * - `--mysql-userdb` (`-M`): coturn's own `key=value` pairs separated by spaces, with its spellings
 *   (host/ip/addr, dbname/db/database, user/uname/name/username, password/pwd/passwd/secret, port/p,
 *   connect_timeout/timeout, read_timeout, and the TLS files ca, cert, key, cipher, also as ssl-*).
 */
import { readFileSync } from "node:fs";

export type NetworkDbKind = "postgres" | "mysql" | "redis";

/** A network user database as configured: which kind, and coturn's connection string. */
export interface NetworkDb {
  kind: NetworkDbKind;
  connection: string;
}

export class ConnectionStringError extends Error {}

export interface SqlOptions {
  adapter: "postgres" | "mysql";
  url?: string;
  hostname?: string;
  port?: number;
  path?: string;
  database?: string;
  username?: string;
  password?: string;
  connectionTimeout?: number;
  tls?: boolean | { ca?: string; cert?: string; key?: string; ciphers?: string; rejectUnauthorized?: boolean };
}

/** libpq's `key=value` list: values bare or single-quoted, backslash escaping inside quotes. */
function libpqPairs(text: string): Map<string, string> {
  const pairs = new Map<string, string>();
  const re = /\s*([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']*))/y;
  let at = 0;
  while (at < text.length && text.slice(at).trim() !== "") {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) throw new ConnectionStringError(`cannot read '${text.slice(at).trim().split(/\s/)[0]}' (expected key=value)`);
    pairs.set(m[1]!, m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!);
    at = re.lastIndex;
  }
  return pairs;
}

const PG_KEYS = new Set(["host", "hostaddr", "port", "dbname", "user", "password", "connect_timeout", "sslmode", "sslrootcert", "sslcert", "sslkey", "application_name"]);

function positive(value: string, key: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConnectionStringError(`${key}: expected a whole number, got '${value}'`);
  return n;
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConnectionStringError(`${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

function postgresOptions(connection: string): SqlOptions {
  if (/^postgres(?:ql)?:\/\//.test(connection)) return { adapter: "postgres", url: connection };
  const pairs = libpqPairs(connection);
  for (const key of pairs.keys()) if (!PG_KEYS.has(key)) throw new ConnectionStringError(`'${key}' is not a connection setting bunturn reads (${[...PG_KEYS].join(", ")})`);
  const host = pairs.get("hostaddr") ?? pairs.get("host") ?? "localhost";
  const port = pairs.has("port") ? positive(pairs.get("port")!, "port") : 5432;
  const options: SqlOptions = { adapter: "postgres", port };
  // libpq: a host starting with '/' is the directory of the server's Unix socket.
  if (host.startsWith("/")) options.path = `${host}/.s.PGSQL.${port}`;
  else options.hostname = host;
  if (pairs.has("dbname")) options.database = pairs.get("dbname")!;
  if (pairs.has("user")) options.username = pairs.get("user")!;
  if (pairs.has("password")) options.password = pairs.get("password")!;
  if (pairs.has("connect_timeout")) options.connectionTimeout = positive(pairs.get("connect_timeout")!, "connect_timeout");
  const sslmode = pairs.get("sslmode") ?? "disable";
  if (sslmode === "require" || sslmode === "verify-ca" || sslmode === "verify-full") {
    const tls: Exclude<SqlOptions["tls"], boolean | undefined> = { rejectUnauthorized: sslmode !== "require" };
    if (pairs.has("sslrootcert")) tls.ca = readPem(pairs.get("sslrootcert")!, "sslrootcert");
    if (pairs.has("sslcert")) tls.cert = readPem(pairs.get("sslcert")!, "sslcert");
    if (pairs.has("sslkey")) tls.key = readPem(pairs.get("sslkey")!, "sslkey");
    options.tls = tls;
  } else if (sslmode !== "disable" && sslmode !== "allow" && sslmode !== "prefer") {
    throw new ConnectionStringError(`sslmode: expected disable, allow, prefer, require, verify-ca or verify-full, got '${sslmode}'`);
  }
  return options;
}

/** coturn's spellings (dbd_mysql.c) for each setting. */
const MYSQL_KEYS: Record<string, string> = {
  host: "host", ip: "host", addr: "host", ipaddr: "host", hostaddr: "host",
  dbname: "dbname", db: "dbname", database: "dbname",
  user: "user", uname: "user", name: "user", username: "user",
  password: "password", pwd: "password", passwd: "password", secret: "password",
  port: "port", p: "port",
  connect_timeout: "connect_timeout", timeout: "connect_timeout", read_timeout: "read_timeout",
  key: "key", "ssl-key": "key", ca: "ca", "ssl-ca": "ca", cert: "cert", "ssl-cert": "cert",
  cipher: "cipher", "ssl-cipher": "cipher", capath: "capath", "ssl-capath": "capath",
};

function mysqlOptions(connection: string): SqlOptions {
  const settings = new Map<string, string>();
  for (const word of connection.split(" ").filter(Boolean)) {
    const eq = word.indexOf("=");
    const setting = eq > 0 ? MYSQL_KEYS[word.slice(0, eq)] : undefined;
    if (setting === undefined) throw new ConnectionStringError(`'${eq > 0 ? word.slice(0, eq) : word}' is not one of coturn's MySQL connection settings (${Object.keys(MYSQL_KEYS).join(", ")})`);
    settings.set(setting, word.slice(eq + 1));
  }
  if (!settings.has("dbname")) throw new ConnectionStringError("dbname=... is missing (the database that holds turnusers_lt)");
  if (settings.has("capath")) throw new ConnectionStringError("capath is not supported: name the CA file with ca=...");
  const options: SqlOptions = {
    adapter: "mysql",
    hostname: settings.get("host") ?? "127.0.0.1",
    port: settings.has("port") ? positive(settings.get("port")!, "port") : 3306,
    database: settings.get("dbname")!,
    username: settings.get("user") ?? "",
    password: settings.get("password") ?? "",
  };
  if (settings.has("connect_timeout")) options.connectionTimeout = positive(settings.get("connect_timeout")!, "connect_timeout");
  if (settings.has("read_timeout")) positive(settings.get("read_timeout")!, "read_timeout"); // each query is bounded by the sync's own timeout
  if (settings.has("ca") || settings.has("cert") || settings.has("key") || settings.has("cipher")) {
    const tls: Exclude<SqlOptions["tls"], boolean | undefined> = {};
    if (settings.has("ca")) tls.ca = readPem(settings.get("ca")!, "ca");
    if (settings.has("cert")) tls.cert = readPem(settings.get("cert")!, "cert");
    if (settings.has("key")) tls.key = readPem(settings.get("key")!, "key");
    if (settings.has("cipher")) tls.ciphers = settings.get("cipher")!;
    options.tls = tls;
  }
  return options;
}

/** Bun.SQL options for the connection string, or a ConnectionStringError naming what is wrong. */
export function sqlOptions(db: NetworkDb): SqlOptions {
  if (db.kind === "redis") throw new ConnectionStringError("Redis is no SQL database (src/userdb/redis-userdb.ts)");
  return db.kind === "postgres" ? postgresOptions(db.connection) : mysqlOptions(db.connection);
}

/** The connection string with its password hidden, for logs. */
export function sanitized(db: NetworkDb): string {
  return db.connection
    .replace(/(\/\/[^:/@]*:)[^/]*@/, "$1***@")
    .replace(/\b(password|pwd|passwd|secret)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)/g, "$1=***");
}

export const OPTION_OF: Record<NetworkDbKind, string> = { postgres: "psql-userdb", mysql: "mysql-userdb", redis: "redis-userdb" };
