/** Picks the protocol core's credential store for the configured mechanism. */
import type { CredentialStore } from "../turn/api.ts";
import { RestSecretCredentials, StaticKeys, StaticUsers, md5Key } from "../turn/credentials.ts";
import { SqliteCredentials, parseHexKey } from "../userdb/sqlite.ts";
import { SqliteSecrets } from "../userdb/secrets.ts";
import type { RelayConfig } from "../config/resolve.ts";

/** coturn's rule for --user NAME:KEY: a value of 0x and 32 hex digits is the MD5 key itself. */
function readyKey(password: string): Uint8Array | null {
  return password.startsWith("0x") ? parseHexKey(password) : null;
}

export function credentialStoreFor(config: RelayConfig, warn?: (message: string) => void): CredentialStore | null {
  switch (config.auth.kind) {
    case "none":
      return null;
    case "rest": {
      const { secrets, separator, userdb } = config.auth;
      const fixed = secrets.map((secret) => new TextEncoder().encode(secret));
      if (userdb === undefined) return new RestSecretCredentials(fixed, separator);
      // coturn's get_auth_secrets: the configured secrets, then the realm's rows of turn_secret.
      const table = new SqliteSecrets(userdb, config.realm);
      table.onWarning = warn;
      return new RestSecretCredentials(() => {
        const stored = table.current();
        return stored.length === 0 ? fixed : [...fixed, ...stored];
      }, separator);
    }
    case "long-term": {
      const { users, userdb } = config.auth;
      // Passwords alone: keep SHA-256 and USERHASH. Ready keys or a database: MD5 keys only.
      if (userdb === undefined && !users.some(([, password]) => readyKey(password) !== null)) {
        return new StaticUsers(users, config.realm);
      }
      const keys = new Map(users.map(([name, password]) => [name, readyKey(password) ?? md5Key(name, config.realm, password)] as const));
      if (userdb === undefined) return new StaticKeys(keys, config.realm);
      const store = new SqliteCredentials(userdb, keys, config.realm);
      store.onWarning = warn;
      return store;
    }
  }
}
