/**
 * Who may allocate: long-term credentials (--user, --userdb), coturn's REST secrets (--use-auth-secret),
 * or nobody asked (--no-auth). With nothing configured, one user is made up rather than run an open relay.
 */
import { randomBytes } from "node:crypto";
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { get } from "./raw-options.ts";
import type { AuthConfig, RelayConfig } from "./relay-config.ts";
import { ConnectionStringError, sqlOptions, type NetworkDb } from "../userdb/connection.ts";
import { parseRedisTarget } from "./redis-target.ts";

/** --psql-userdb, --mysql-userdb or --redis-userdb (one user database in all), its connection string checked now. */
function resolveNetworkUserdb(raw: RawOptions, userdb: string | undefined): NetworkDb | undefined {
  const given = ([["postgres", "psql-userdb"], ["mysql", "mysql-userdb"], ["redis", "redis-userdb"]] as const)
    .map(([kind, option]) => ({ kind, option, connection: get<string | undefined>(raw, option) }))
    .filter((g) => g.connection !== undefined);
  if (given.length === 0) return undefined;
  const named = [...(userdb !== undefined ? ["--userdb"] : []), ...given.map((g) => `--${g.option}`)];
  if (named.length > 1) throw new ConfigError(`${named.join(" and ")}: give one user database`);
  const { kind, option, connection } = given[0]!;
  if (connection!.trim() === "") throw new ConfigError(`--${option} needs a connection string`);
  if (kind === "redis") {
    parseRedisTarget(connection!, option); // a ConfigError naming the option
    return { kind, connection: connection! };
  }
  try {
    sqlOptions({ kind, connection: connection! });
  } catch (error) {
    if (error instanceof ConnectionStringError) throw new ConfigError(`--${option}: ${error.message}`);
    throw error;
  }
  return { kind, connection: connection! };
}

export function resolveAuth(raw: RawOptions): Pick<RelayConfig, "auth" | "generatedUser"> {
  const users = (get<string[] | undefined>(raw, "user") ?? []).map((u): [string, string] => {
    const at = u.indexOf(":");
    if (at <= 0 || at === u.length - 1) throw new ConfigError(`--user: expected NAME:PASSWORD, got '${u}'`);
    return [u.slice(0, at), u.slice(at + 1)];
  });
  const useAuthSecret = get<boolean>(raw, "use-auth-secret") === true;
  const noAuth = get<boolean>(raw, "no-auth") === true;
  const ltCredMech = get<boolean>(raw, "lt-cred-mech") === true;
  // coturn: --use-auth-secret is a kind of long-term credentials, so --lt-cred-mech may come with it.
  if (noAuth && (useAuthSecret || ltCredMech)) throw new ConfigError("--no-auth cannot be combined with --lt-cred-mech or --use-auth-secret");
  let auth: AuthConfig;
  let generatedUser: RelayConfig["generatedUser"];
  const userdb = get<string | undefined>(raw, "userdb");
  if (userdb !== undefined && userdb.trim() === "") throw new ConfigError("--userdb needs a file name");
  const networkUserdb = resolveNetworkUserdb(raw, userdb);
  if (useAuthSecret) {
    const secrets = get<string[] | undefined>(raw, "static-auth-secret") ?? [];
    if (secrets.some((secret) => secret === "")) throw new ConfigError("--static-auth-secret must not be empty");
    if (secrets.length === 0 && userdb === undefined && networkUserdb === undefined) throw new ConfigError("--use-auth-secret needs --static-auth-secret (or a user database whose turn_secret table holds the secrets)");
    const separator = get<string>(raw, "rest-api-separator");
    if (separator.length !== 1) throw new ConfigError(`--rest-api-separator: one character, got '${separator}'`);
    auth = { kind: "rest", secrets, separator, ...(userdb !== undefined ? { userdb } : {}), ...(networkUserdb ? { networkUserdb } : {}) };
  } else if (noAuth) {
    auth = { kind: "none" };
  } else {
    // Safe by default: with no credentials configured, make up one user rather than run an open relay.
    if (users.length === 0 && userdb === undefined && networkUserdb === undefined) {
      generatedUser = { name: "bunturn", password: randomBytes(12).toString("base64url") };
      users.push([generatedUser.name, generatedUser.password]);
    }
    auth = { kind: "long-term", users, ...(userdb !== undefined ? { userdb } : {}), ...(networkUserdb ? { networkUserdb } : {}) };
  }
  return generatedUser ? { auth, generatedUser } : { auth };
}
