/** Picks the protocol core's credential store for the configured mechanism. */
import type { CredentialStore } from "../turn/api.ts";
import { RestSecretCredentials, StaticUsers } from "../turn/credentials.ts";
import type { RelayConfig } from "../config/resolve.ts";

export function credentialStoreFor(config: RelayConfig): CredentialStore | null {
  switch (config.auth.kind) {
    case "none":
      return null;
    case "rest":
      return new RestSecretCredentials(config.auth.secret);
    case "long-term":
      return new StaticUsers(config.auth.users, config.realm);
  }
}
