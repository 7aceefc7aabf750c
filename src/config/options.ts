/**
 * Every option bunturn understands, once: the command line (citty) and turnserver.conf files are both
 * read through this table, so a flag and a config key always mean the same thing. Names and defaults
 * follow coturn where coturn has the option.
 */
export type OptionKind = "string" | "number" | "boolean" | "list";

export interface OptionSpec {
  kind: OptionKind;
  alias?: string;
  description: string;
  default?: string | number | boolean;
  /** A list whose values are taken whole: no splitting at commas (secrets may contain any character). */
  verbatim?: boolean;
  /** The value a bare key means (coturn's optional arguments: `stale-nonce` alone is 600). */
  bare?: string | number;
}

export const OPTIONS = {
  "listening-ip": { kind: "list", alias: "L", description: "Address to listen on (repeatable). Default: 0.0.0.0 and ::" },
  "listening-port": { kind: "number", alias: "p", default: 3478, description: "UDP port for STUN/TURN" },
  "relay-ip": { kind: "list", alias: "E", description: "Address relay sockets bind to (repeatable, one per family). Default: the first specific listening address of each family, else the first non-loopback IPv4 address and, when listening on IPv6, the first global IPv6 one" },
  "external-ip": { kind: "list", alias: "X", description: "Public address advertised for relays: PUBLIC or PUBLIC/PRIVATE (behind NAT)" },
  "min-port": { kind: "number", default: 49152, description: "Lowest relay port" },
  "max-port": { kind: "number", default: 65535, description: "Highest relay port" },
  realm: { kind: "string", alias: "r", default: "bunturn", description: "Realm for long-term credentials" },
  "lt-cred-mech": { kind: "boolean", alias: "a", description: "Long-term credential mechanism (default when no other is chosen)" },
  "no-auth": { kind: "boolean", alias: "z", description: "No authentication at all: anyone may allocate (not for the open internet)" },
  user: { kind: "list", alias: "u", description: "A static user NAME:PASSWORD (repeatable)" },
  "use-auth-secret": { kind: "boolean", description: "TURN REST API: time-limited credentials from a shared secret" },
  "static-auth-secret": { kind: "list", verbatim: true, description: "A shared secret for --use-auth-secret (repeatable: a username is valid under any of them, so a new secret can be rolled in before the old one goes; --userdb's turn_secret rows count too)" },
  "rest-api-separator": { kind: "string", alias: "C", default: ":", description: "The character between the expiry timestamp and the user name in TURN REST API usernames" },
  "alternate-server": { kind: "list", description: "Send new Allocates to this server instead (300 Try Alternate with ALTERNATE-SERVER, round robin): IP, IP:PORT or [IPv6]:PORT (repeatable). A list that names this server redirects only while draining" },
  "udp-alternate-server": { kind: "list", description: "Like --alternate-server, for UDP clients only (takes precedence for them)" },
  "tcp-alternate-server": { kind: "list", description: "Like --alternate-server, for TCP clients only (takes precedence for them)" },
  "tls-alternate-server": { kind: "list", description: "Like --alternate-server, for TLS clients only (takes precedence for them; default port 5349)" },
  "drain-min-allocations": { kind: "number", default: 0, description: "After SIGUSR1 (drain: no new allocations; live ones go on), exit once this many allocations or fewer remain" },
  "allow-loopback-peers": { kind: "boolean", description: "Allow relaying to loopback peers (127.0.0.0/8, ::1); for testing only" },
  "allowed-peer-ip": { kind: "list", description: "Peer address or range (IP, IP1-IP2 or CIDR) that is allowed even if denied otherwise (repeatable)" },
  "denied-peer-ip": { kind: "list", description: "Peer address or range that is denied (repeatable)" },
  "no-dynamic-ip-list": { kind: "boolean", description: "Do not read the user database's allowed_peer_ip and denied_peer_ip tables (coturn's dynamic peer lists: rows of the realm and of realm '' add to --allowed-peer-ip and --denied-peer-ip, re-read within a second of a change)" },
  "max-allocate-lifetime": { kind: "number", default: 3600, description: "Longest allocation lifetime in seconds" },
  "default-allocate-lifetime": { kind: "number", default: 600, description: "Allocation lifetime when the client asks for none, in seconds" },
  "permission-lifetime": { kind: "number", default: 300, description: "Permission lifetime in seconds" },
  "channel-lifetime": { kind: "number", default: 600, description: "Channel binding lifetime in seconds" },
  "stale-nonce": { kind: "number", default: 600, bare: 600, description: "Nonce lifetime in seconds" },
  "user-quota": { kind: "number", alias: "q", default: 0, description: "Most allocations one username may hold at once, server-wide; more get 486 (0 = unlimited)" },
  "total-quota": { kind: "number", alias: "Q", default: 0, description: "Most allocations on the whole server; more get 486 (0 = unlimited)" },
  "unauthorized-ratelimit": { kind: "boolean", default: true, description: "Per-source rate limit on error responses to unauthenticated requests (the 401 challenge, 400, 420): past --unauthorized-ratelimit-rps a second from one IP address the server stays silent, so spoofed requests cannot bounce them at a victim. On by default (coturn: off); --no-unauthorized-ratelimit turns it off" },
  "unauthorized-ratelimit-rps": { kind: "number", default: 100, description: "Error responses to unauthenticated requests one source IP address may get per second, per relay thread (coturn's default is 10; a client needs one per allocation)" },
  "max-bps": { kind: "number", alias: "s", default: 0, description: "Bandwidth cap of one session in bytes per second, each direction; excess datagrams are dropped (0 = unlimited)" },
  "bps-capacity": { kind: "number", alias: "B", default: 0, description: "Server bandwidth in bytes per second that sessions reserve their --max-bps from; Allocate gets 486 when none is left (0 = unlimited)" },
  "relay-threads": { kind: "number", alias: "m", description: "Relay engines (threads). Default: the number of CPUs" },
  "sock-buf-size": { kind: "number", default: 2097152, description: "Socket send/receive buffer size in bytes (halved on error)" },
  "udp-recvmmsg": { kind: "boolean", description: "Receive UDP in batches of up to 16 datagrams per system call (recvmmsg)" },
  "udp-recvmmsg-log": { kind: "boolean", description: "Log recvmmsg batch statistics every 10 s (summed over engines)" },
  "udp-gso": { kind: "boolean", default: true, description: "Send each run of datagrams to one destination with one size (a video frame's packets) as one UDP_SEGMENT message (GSO), per socket where the kernel takes it (--no-udp-gso: one datagram per message)" },
  "udp-gro": { kind: "boolean", default: true, description: "Receive trains of equal datagrams the kernel coalesced (UDP_GRO) in one buffer, cut back into datagrams (--no-udp-gro: off)" },
  warmup: { kind: "boolean", default: true, description: "Before the listeners open, each relay thread sends a few hundred milliseconds of synthetic traffic through a throwaway copy of its relay path on 127.0.0.1, so that the first real clients meet compiled code (--no-warmup: off)" },
  "no-tcp": { kind: "boolean", description: "Do not accept TURN over TCP on the listening port (UDP only)" },
  "no-udp": { kind: "boolean", description: "Do not accept TURN over UDP on the listening port (TCP and TLS only; relays stay UDP)" },
  "tcp-proxy-port": { kind: "number", description: "Also accept TURN over TCP from a load balancer on this port: each connection starts with a PROXY protocol v1 or v2 header naming the real client (headers are read on this port only)" },
  "no-udp-relay": { kind: "boolean", description: "Refuse UDP relays: an Allocate for UDP gets 442" },
  "no-tcp-relay": { kind: "boolean", description: "Refuse TCP relays (RFC 6062, offered to TURN over TCP and TLS clients): an Allocate for TCP gets 442" },
  "stun-only": { kind: "boolean", alias: "S", description: "STUN only: Binding is answered, every TURN request gets 400" },
  "no-stun": { kind: "boolean", description: "TURN only: Binding requests are not answered" },
  rfc5780: { kind: "boolean", description: "RFC 5780 NAT behaviour discovery: Binding answers name an alternate address (OTHER-ADDRESS) and leave from it on CHANGE-REQUEST. Needs two listening IPs of one family; each listens on UDP at the listening port and at --alt-listening-port (docs/rfc5780.md)" },
  "alt-listening-port": { kind: "number", description: "The alternate UDP port for --rfc5780. Default: the listening port plus one" },
  "allocation-default-address-family": { kind: "string", alias: "A", default: "ipv4", description: "Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY: ipv4, ipv6, or keep (the family the client came in on)" },
  "keep-address-family": { kind: "boolean", alias: "K", description: "coturn's older name for --allocation-default-address-family keep" },
  "tls-proxy-port": { kind: "number", description: "Also accept TURN over TLS from a load balancer that passes TLS through: each connection starts with a PROXY protocol v1 or v2 header, then the client's TLS (needs --cert and --pkey)" },
  "tls-listening-port": { kind: "number", default: 5349, description: "Port for TURN over TLS (turns:), on with --cert and --pkey" },
  cert: { kind: "string", description: "TLS certificate chain (PEM) for TURN over TLS" },
  pkey: { kind: "string", description: "TLS private key (PEM) for TURN over TLS" },
  "no-tls": { kind: "boolean", description: "No TURN over TLS even if --cert/--pkey are given" },
  "pkey-pwd": { kind: "string", description: "Passphrase of an encrypted --pkey" },
  "cipher-list": { kind: "string", description: "TLS 1.2 cipher list (OpenSSL syntax); TLS 1.3 suites are OpenSSL's defaults" },
  "CA-file": { kind: "string", description: "CA certificates (PEM): TLS clients must present a certificate signed by one of them" },
  dtls: { kind: "boolean", description: "Serve TURN over DTLS 1.2 (needs --cert and --pkey) on the listening port's UDP listeners and on UDP --tls-listening-port (coturn 4.17: off unless asked for)" },
  "no-dtls": { kind: "boolean", description: "No DTLS even with --dtls (coturn's deprecated switch)" },
  "dtls-max-sessions": { kind: "number", default: 2048, description: "DTLS associations per relay thread at most (about 65 KB of OpenSSL memory each); a client whose cookie proved its address beyond that is dropped (bunturn_dtls_refused_total)" },
  "dtls-max-sessions-per-ip": { kind: "number", default: 256, description: "Of those, from one IPv4 address or IPv6 /64 per relay thread at most (one source cannot take every slot); beyond it, dropped like --dtls-max-sessions" },
  "no-tlsv1_2": { kind: "boolean", description: "TLS 1.3 only (TLS 1.0 and 1.1 are never offered)" },
  "udp-sendmmsg": { kind: "boolean", default: true, description: "Send batched UDP with sendmmsg (--no-udp-sendmmsg: one sendmsg per datagram)" },
  "server-name": { kind: "string", default: "bunturn", description: "SOFTWARE attribute value" },
  "no-software-attribute": { kind: "boolean", description: "Send no SOFTWARE attribute (coturn's older production mode; bunturn's carries --server-name only, never a version)" },
  verbose: { kind: "boolean", alias: "v", description: "Verbose logging" },
  "log-stats-interval": { kind: "number", default: 10, description: "Seconds between --udp-recvmmsg-log lines" },
  prometheus: { kind: "boolean", description: "Serve Prometheus metrics over HTTP (GET /metrics; GET / answers ok, a health check)" },
  "prometheus-port": { kind: "number", default: 9641, description: "Port of the Prometheus endpoint" },
  "prometheus-address": { kind: "string", default: "0.0.0.0", description: "Address of the Prometheus endpoint (:: for IPv6)" },
  "prometheus-path": { kind: "string", default: "/metrics", description: "URL path of the metrics" },
  userdb: { kind: "string", alias: "b", description: "SQLite user database (coturn's turnusers_lt table; manage it with 'bunturn admin'); read on every login, changes apply without restart" },
  "psql-userdb": { kind: "string", alias: "e", description: "PostgreSQL user database, coturn's connection string ('host=H dbname=D user=U password=P connect_timeout=S' or postgresql://U:P@H:PORT/D) and schema (turnusers_lt, turn_secret); the relay serves a local copy, read again every 2 s and on NOTIFY, kept through an outage (docs/fleet.md)" },
  "redis-userdb": { kind: "string", alias: "N", description: "Redis user database, coturn's connection string ('host=H port=N dbname=D password=P connect_timeout=S') or a redis:// URL, and key layout (turn/realm/REALM/user/NAME/key, the set turn/realm/REALM/secret); the relay serves a local copy, read again every 2 s and on a publish from bunturn admin, kept through an outage (docs/fleet.md)" },
  "mysql-userdb": { kind: "string", alias: "M", description: "MySQL or MariaDB user database, coturn's connection string ('host=H dbname=D user=U password=P port=N connect_timeout=S', TLS: ca= cert= key= cipher=) and schema; the relay serves a local copy, read again every 2 s, kept through an outage (docs/fleet.md)" },
  "log-file": { kind: "string", alias: "l", description: "Also log to this file ('stdout' or '-': standard output only); reopened on SIGHUP" },
  "no-stdout-log": { kind: "boolean", description: "With --log-file, log to the file only" },
  "simple-log": { kind: "boolean", description: "Accepted for coturn compatibility: the log file name is always used as given" },
  syslog: { kind: "boolean", description: "Also log to the system log (datagrams to --syslog-socket, RFC 3164 format)" },
  "syslog-facility": { kind: "string", default: "user", description: "Syslog facility: user, daemon, local0 ... local7 (coturn's names)" },
  "syslog-socket": { kind: "string", default: "/dev/log", description: "Unix datagram socket of the system logger (bunturn only)" },
  "log-format": { kind: "string", default: "text", description: "Log line format: text, or json (one object per line: time, level, message)" },
  "control-socket": { kind: "string", description: "Unix socket (created 0600) for 'bunturn admin sessions' and 'bunturn admin kill'; off when unset" },
  "fleet-redis": { kind: "string", description: "Redis shared by a fleet of relays (docs/fleet.md): the nonce secret (unless --nonce-secret-file), and --user-quota/--total-quota counted across every relay of the realm. redis://[:PASSWORD@]HOST[:PORT][/DB] or coturn's 'host=... port=... dbname=... password=...'; while it is down each relay counts alone" },
  "fleet-capacity": { kind: "number", default: 0, description: "With --fleet-redis: allocations this relay takes before it sends new Allocates (300 Try Alternate) to the least-loaded live relay of the fleet with room (0 = no limit); a draining relay sends them there too" },
  "fleet-address": { kind: "list", description: "With --fleet-redis: the address (one per family) other relays send clients to when they redirect here. Default: the --external-ip public addresses, else the specific listening addresses" },
  "redis-statsdb": { kind: "string", alias: "O", description: "coturn's Redis statistics database (its keys and events: allocation status, traffic), plus every allocation's usage record appended to the stream bunturn/usage/realm/REALM, kept and retried while Redis is down (docs/fleet.md). coturn's connection string or a redis:// URL" },
  "nonce-secret-file": { kind: "string", description: "File whose contents key the nonces (at least 16 bytes), so every relay given the same file accepts the others' nonces (default: from --fleet-redis, else random per process)" },
  "usage-log": { kind: "string", description: "Append one JSON usage record per allocation, when it ends, to this file (default: to the log as 'usage {...}')" },
  pidfile: { kind: "string", description: "Write the process id to this file at start; removed at a clean stop" },
  "max-tcp-connections": { kind: "number", default: 0, description: "Most TCP and TLS client connections at once, server-wide; more are closed at once (0 = a quarter of the descriptor limit, at least 256)" },
  "max-tcp-connections-per-ip": { kind: "number", default: 512, description: "Most TCP and TLS client connections from one IPv4 address or IPv6 /64; more are closed at once (0 = unlimited)" },
  "tls-handshake-timeout": { kind: "number", default: 10, description: "Seconds a TLS client has to finish its handshake before it is closed" },
  "tcp-first-message-timeout": { kind: "number", default: 10, description: "Seconds a TCP client (a TLS client: after its handshake) has to send its first whole message before it is closed" },
  "max-tcp-buffer": { kind: "number", default: 262144, description: "Bytes of unread replies one TCP/TLS client may hold before it is closed" },
  "max-tcp-buffer-total": { kind: "number", default: 33554432, description: "Bytes all TCP/TLS clients of one engine may hold together (partial messages and unread replies); a client that needs more is closed" },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** The raw, merged option values: numbers, booleans, strings, and string lists for repeatable options. */
export type RawOptions = Partial<Record<OptionName, string | number | boolean | string[]>>;

export function isOptionName(name: string): name is OptionName {
  return Object.hasOwn(OPTIONS, name);
}
