/**
 * Who may allocate: long-term credentials (--user, --userdb), coturn's REST secrets (--use-auth-secret),
 * or nobody asked (--no-auth). With nothing configured, one user is made up rather than run an open relay.
 */
import { randomBytes } from "node:crypto";
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { get } from "./raw-options.ts";
import type { AuthConfig, RelayConfig } from "./relay-config.ts";

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
  if (useAuthSecret) {
    const secrets = get<string[] | undefined>(raw, "static-auth-secret") ?? [];
    if (secrets.some((secret) => secret === "")) throw new ConfigError("--static-auth-secret must not be empty");
    if (secrets.length === 0 && userdb === undefined) throw new ConfigError("--use-auth-secret needs --static-auth-secret (or a --userdb whose turn_secret table holds the secrets)");
    const separator = get<string>(raw, "rest-api-separator");
    if (separator.length !== 1) throw new ConfigError(`--rest-api-separator: one character, got '${separator}'`);
    auth = userdb === undefined ? { kind: "rest", secrets, separator } : { kind: "rest", secrets, separator, userdb };
  } else if (noAuth) {
    auth = { kind: "none" };
  } else {
    // Safe by default: with no credentials configured, make up one user rather than run an open relay.
    if (users.length === 0 && userdb === undefined) {
      generatedUser = { name: "bunturn", password: randomBytes(12).toString("base64url") };
      users.push([generatedUser.name, generatedUser.password]);
    }
    auth = userdb === undefined ? { kind: "long-term", users } : { kind: "long-term", users, userdb };
  }
  return generatedUser ? { auth, generatedUser } : { auth };
}
