/**
 * What bunturn does with each of coturn's option names that is not one of its own options (options.ts):
 * the same as an option under another name, accepted because bunturn already behaves that way (said at
 * -v, one line each), or refused at start with the reason. Together with OPTIONS this covers every name
 * coturn's turnserver knows (test/fixtures/coturn/option-names.txt); a name in neither table is unknown.
 * A key that would weaken security if ignored is never accepted: it is implemented or refused.
 */
import { OPTIONS, isOptionName, type OptionName } from "./options.ts";

/** How coturn reads the key: a flag (`none`/`optional`: a bare key means on) or one that needs a value. */
export type CoturnArgument = "none" | "optional" | "required";

export type CoturnName =
  | { status: "same-as"; option: OptionName; alias?: string }
  | { status: "accepted" | "refused"; why: string; argument: CoturnArgument; alias?: string };

const accepted = (why: string, argument: CoturnArgument = "optional", alias?: string): CoturnName =>
  alias ? { status: "accepted", why, argument, alias } : { status: "accepted", why, argument };
const refused = (why: string, argument: CoturnArgument = "optional", alias?: string): CoturnName =>
  alias ? { status: "refused", why, argument, alias } : { status: "refused", why, argument };

const NO_DB = "only SQLite (--userdb), PostgreSQL (--psql-userdb), MySQL/MariaDB (--mysql-userdb) and Redis (--redis-userdb) user databases are supported";
const NO_DHE = "DHE suites named in --cipher-list use OpenSSL's built-in groups, sized to the key: no DH parameter file is read";

export const COTURN_NAMES: Record<string, CoturnName> = {
  // Other spellings of bunturn's own options.
  db: { status: "same-as", option: "userdb" },
  "sql-userdb": { status: "same-as", option: "psql-userdb" },
  Verbose: { status: "same-as", option: "verbose", alias: "V" },

  // Already bunturn's behaviour.
  fingerprint: accepted("FINGERPRINT is added to every response whose request carried one (RFC 8489 §14.7), what WebRTC clients send", "optional", "f"),
  "no-multicast-peers": accepted("multicast, broadcast and 0.0.0.0/8 peers are always refused (docs/peer-policy.md)"),
  "no-loopback-peers": accepted("loopback peers are refused unless --allow-loopback-peers"),
  "no-tlsv1": accepted("TLS 1.0 is never offered (TLS 1.2 and 1.3 only)"),
  "no-tlsv1_1": accepted("TLS 1.1 is never offered (TLS 1.2 and 1.3 only)"),
  "no-sslv3": accepted("SSL 3 is never offered (TLS 1.2 and 1.3 only)"),
  "no-cli": accepted("bunturn has no telnet CLI (see 'bunturn admin')"),
  "cli-ip": accepted("bunturn has no telnet CLI, so nothing listens there", "required"),
  "cli-port": accepted("bunturn has no telnet CLI, so nothing listens there", "required"),
  "cli-password": accepted("bunturn has no telnet CLI, so there is nothing to log in to", "required"),
  "cli-max-output-sessions": accepted("bunturn has no telnet CLI", "required"),
  "web-admin-ip": accepted("bunturn has no web admin, so nothing listens there", "required"),
  "web-admin-port": accepted("bunturn has no web admin, so nothing listens there", "required"),
  "web-admin-listen-on-workers": accepted("bunturn has no web admin"),
  "no-rfc5780": accepted("RFC 5780 is off unless --rfc5780 is given (coturn's default too)"),
  "response-origin-only-with-rfc5780": accepted("RESPONSE-ORIGIN and OTHER-ADDRESS are sent only with --rfc5780 anyway (coturn too)"),
  "alt-tls-listening-port": accepted("RFC 5780's alternate addresses are served over UDP only (what NAT discovery uses), so no alternate TLS port is opened", "required"),
  "rfc5766-channel-numbers": accepted("ChannelBind takes RFC 5766's channel numbers, 0x4000-0x7FFF"),
  "software-attribute": accepted("SOFTWARE carries --server-name (default 'bunturn')"),
  "no-auth-pings": accepted("nothing to switch off: a network user database is read every 2 s anyway, and its health is on /metrics (bunturn_userdb_up)"),
  "no-dynamic-realms": accepted("realms are never read from a database"),
  "stateless-nonce": accepted("nonces are always stateless (HMAC, docs/architecture.md)"),
  "new-log-timestamp": accepted("log lines always carry ISO 8601 timestamps"),
  version: accepted("'bunturn --version' prints the version; in a file it means nothing"),
  "-n": accepted("bunturn reads a configuration file only when -c names one", "none", "n"),

  // Refused: bunturn does not do this, and ignoring the line would change what the operator gets.
  "listening-device": refused("binding to a device is not supported: use --listening-ip", "required", "d"),
  "relay-device": refused("binding to a device is not supported: use --relay-ip", "required", "i"),
  "aux-server": refused("auxiliary servers are not supported", "required"),
  "udp-self-balance": refused("UDP self-balancing is not supported"),
  "mongo-userdb": refused(NO_DB, "required", "J"),
  "prometheus-username-labels": refused("per-user labels make the metric set unbounded"),
  "prometheus-tls": refused("the metrics endpoint speaks plain HTTP: bind it to loopback or put a proxy in front"),
  "prometheus-cert": refused("the metrics endpoint speaks plain HTTP", "required"),
  "prometheus-key": refused("the metrics endpoint speaks plain HTTP", "required"),
  oauth: refused("third-party authorization (OAuth access tokens) is not supported"),
  daemon: refused("bunturn does not fork: run it under systemd or another supervisor (docs/systemd.md)", "optional", "o"),
  "check-origin-consistency": refused("ORIGIN is not checked"),
  "raw-public-keys": refused("raw public keys are not supported"),
  "log-min-level": refused("log levels are --verbose or not", "required"),
  "new-log-timestamp-format": refused("the timestamp format is fixed (ISO 8601)", "required"),
  "log-binding": refused("Binding requests are not logged"),
  mobility: refused("MOBILITY-TICKET (RFC 8016) is not supported"),
  "secure-stun": refused("Binding requests are answered without authentication (RFC 8489)"),
  "server-relay": refused("relaying to this server's own addresses is not supported"),
  "max-allocate-timeout": refused("allocation timeouts are not configurable", "required"),
  "proc-user": refused("bunturn does not change user: start it as that user (systemd User=)", "required"),
  "proc-group": refused("bunturn does not change group: start it with that group (systemd Group=)", "required"),
  cli: refused("bunturn has no telnet CLI (see 'bunturn admin')"),
  "web-admin": refused("bunturn has no web admin"),
  "ec-curve-name": refused("the ECDH curves are OpenSSL's defaults", "required"),
  "dh-file": accepted(NO_DHE, "required"),
  dh566: accepted(NO_DHE),
  dh1066: accepted(NO_DHE),
  dh2066: accepted(NO_DHE),
  tlsv1: refused("TLS 1.0 is never offered"),
  tlsv1_1: refused("TLS 1.1 is never offered"),
  "secret-key-file": refused("encrypted passwords in the database are not supported", "required"),
  "acme-redirect": refused("ACME HTTP redirects are not served", "required"),
  "stun-backward-compatibility": refused("MAPPED-ADDRESS for old STUN clients is not sent (XOR-MAPPED-ADDRESS only)"),
  "rfc3489-compatibility": refused("classic STUN (RFC 3489) is not served"),
  "respond-http-unsupported": refused("HTTP requests on the TURN port are not answered"),
  "drop-invalid-packets": refused("malformed requests get 400 (rate-limited by --unauthorized-ratelimit)"),
  "drop-invalid-packets-log": refused("malformed requests are not logged"),
  "udp-sendmmsg-log": refused("batch statistics are logged for receiving only (--udp-recvmmsg-log)"),
  "include-reason-string": refused("error responses carry the standard reason phrases only"),
  "multiplex-peer": refused("peer multiplexing is not supported", "none"),
  "multiplex-peer-port": refused("peer multiplexing is not supported", "required"),
  "multiplex-peer-max-peers": refused("peer multiplexing is not supported", "required"),
  cpus: refused("use --relay-threads", "required"),
  "stateless-nonce-secret": refused("the nonce key is made at start and not configurable", "required"),
};

export type Classified =
  | { status: "option"; option: OptionName }
  | { status: "accepted" | "refused"; name: string; why: string; argument: CoturnArgument }
  | { status: "unknown" };

/** What a name means: one of bunturn's options (directly or by coturn's other name), accepted, refused, or unknown. */
export function classifyName(name: string): Classified {
  if (isOptionName(name)) return { status: "option", option: name };
  const entry = Object.hasOwn(COTURN_NAMES, name) ? COTURN_NAMES[name]! : undefined;
  if (entry === undefined) return { status: "unknown" };
  if (entry.status === "same-as") return { status: "option", option: entry.option };
  return { status: entry.status, name, why: entry.why, argument: entry.argument };
}

/** coturn's one-letter options, bunturn's own aliases first. */
export const SHORT_NAMES: ReadonlyMap<string, string> = new Map([
  ...Object.entries(OPTIONS).flatMap(([name, spec]) => ("alias" in spec ? [[spec.alias, name] as [string, string]] : [])),
  ...Object.entries(COTURN_NAMES).flatMap(([name, e]) => (e.alias !== undefined ? [[e.alias, name] as [string, string]] : [])),
]);
