/**
 * coturn's `--prometheus` endpoint, served by Bun.serve in the main thread from the engines' shared
 * counter blocks (src/engine/counters.ts). A scrape reads a few hundred Float64 slots and formats text:
 * the engines never see it. Metric names are coturn's where coturn has the metric (prom_server.c),
 * `bunturn_*` otherwise. Labels are bounded: realm (one per server), type, family, direction, reason,
 * batch size, engine index; never a username.
 */
import { STAT } from "../../ffi/stats.ts";
import { GAUGE, protocolSlot } from "../engine/counters.ts";
import type { Logger } from "../engine/relay-server.ts";

/** What the endpoint reads: RelayServer implements it. */
export interface MetricsSource {
  /** Sum of every engine's counter block. */
  totals(): Float64Array;
  /** Each engine's own block (read-only views of shared memory). */
  engineCounters(): readonly Float64Array[];
  readonly relayPortsInUse: number;
}

export interface MetricsOptions {
  realm: string;
  version: string;
  /** Unix seconds the process started, for process_start_time_seconds. */
  startTime: number;
}

type Kind = "counter" | "gauge";

class Exposition {
  private readonly lines: string[] = [];

  metric(name: string, kind: Kind, help: string, samples: Array<[labels: string, value: number]> | number): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${kind}`);
    if (typeof samples === "number") {
      this.lines.push(`${name} ${format(samples)}`);
      return;
    }
    for (const [labels, value] of samples) this.lines.push(`${name}${labels ? `{${labels}}` : ""} ${format(value)}`);
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

function format(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
}

/** A label value in the text format: backslash, double quote and newline escaped. */
export function labelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** The whole /metrics page (Prometheus text format 0.0.4). */
export function renderMetrics(source: MetricsSource, options: MetricsOptions): string {
  const t = source.totals();
  const p = (name: Parameters<typeof protocolSlot>[0]) => t[protocolSlot(name)]!;
  const realm = `realm="${labelValue(options.realm)}"`;
  const out = new Exposition();

  out.metric("turn_total_allocations", "gauge", "Represents current allocations number", [['type="UDP"', p("allocations")]]);
  out.metric("bunturn_relay_addresses", "gauge", "Relayed transport addresses open now, by family (a dual allocation has one of each)", [
    ['family="ipv4"', p("relays4")],
    ['family="ipv6"', p("relays6")],
  ]);
  out.metric("bunturn_allocations_created_total", "counter", "Allocations created", p("allocationsCreated"));
  out.metric("bunturn_allocations_deleted_total", "counter", "Allocations ended (Refresh 0, expiry, shutdown)", p("allocationsDeleted"));

  out.metric("stun_binding_request", "counter", "Incoming STUN Binding requests", p("bindingRequests"));
  out.metric("stun_binding_response", "counter", "Outgoing STUN Binding responses", p("bindingResponses"));
  out.metric("stun_binding_error", "counter", "STUN Binding errors", p("bindingErrors"));

  // coturn adds a session's traffic when it ends; bunturn counts as it goes (see docs/metrics.md).
  const traffic: Array<[suffix: string, help: string, value: number]> = [
    ["rcvp", "Packets received from clients", p("clientPacketsIn")],
    ["rcvb", "Bytes received from clients", p("clientBytesIn")],
    ["sentp", "Packets sent to clients", p("clientPacketsOut")],
    ["sentb", "Bytes sent to clients", p("clientBytesOut")],
    ["peer_rcvp", "Packets received from peers", p("peerPacketsIn")],
    ["peer_rcvb", "Bytes received from peers", p("peerBytesIn")],
    ["peer_sentp", "Packets sent to peers", p("clientToPeerPackets")],
    ["peer_sentb", "Bytes sent to peers", p("clientToPeerBytes")],
  ];
  for (const [suffix, help, value] of traffic) out.metric(`turn_traffic_${suffix}`, "counter", `${help}, by realm`, [[realm, value]]);
  for (const [suffix, help, value] of traffic) out.metric(`turn_total_traffic_${suffix}`, "counter", help, value);

  out.metric("bunturn_relayed_packets_total", "counter", "Datagrams relayed, by direction", [
    ['direction="client_to_peer"', p("clientToPeerPackets")],
    ['direction="peer_to_client"', p("peerToClientPackets")],
  ]);
  out.metric("bunturn_relayed_bytes_total", "counter", "Payload bytes relayed (without ChannelData or Data indication framing), by direction", [
    ['direction="client_to_peer"', p("clientToPeerBytes")],
    ['direction="peer_to_client"', p("peerToClientBytes")],
  ]);
  out.metric("bunturn_unauthorized_total", "counter", "401 Unauthenticated responses (the first one of every authenticated exchange is normal)", p("unauthorized"));
  out.metric("bunturn_error_responses_total", "counter", "STUN error responses sent (including 401s)", p("errorsSent"));
  out.metric("bunturn_packets_dropped_total", "counter", "Datagrams dropped: protocol = malformed, no allocation, no permission, over --max-bps; ttl = arrived with TTL 0", [
    ['reason="protocol"', p("dropped")],
    ['reason="ttl"', t[GAUGE.ttlDropped]!],
  ]);
  out.metric("bunturn_icmp_errors_total", "counter", "ICMP errors read from socket error queues", t[GAUGE.icmpErrors]!);
  out.metric("bunturn_engine_crashes_total", "counter", "Exceptions caught in an engine's loop (a bug: the datagrams in hand were lost)", t[GAUGE.crashes]!);
  out.metric("bunturn_relay_sockets", "gauge", "Relay sockets open now", t[GAUGE.relaySockets]!);
  out.metric("bunturn_relay_ports_in_use", "gauge", "Relay ports taken from the shared pool (sockets and EVEN-PORT reservations)", source.relayPortsInUse);

  out.metric("turn_udp_recvmmsg_calls", "counter", "recvmmsg system calls (including those that found nothing: wouldblock)", t[STAT.calls]!);
  out.metric("turn_udp_recvmmsg_packets", "counter", "Datagrams received through recvmmsg", t[STAT.packets]!);
  out.metric("bunturn_udp_recvmmsg_wouldblock_total", "counter", "recvmmsg calls that returned EAGAIN", t[STAT.wouldblock]!);
  out.metric("bunturn_udp_recvmmsg_unavailable_total", "counter", "recvmmsg refused by the kernel (ENOSYS, EINVAL, EOPNOTSUPP)", t[STAT.unavailable]!);
  out.metric("bunturn_udp_recvmmsg_no_buffer_total", "counter", "recvmmsg calls that failed with ENOBUFS or ENOMEM", t[STAT.noBuffer]!);
  out.metric("bunturn_udp_recvmmsg_batches_total", "counter", "recvmmsg calls by number of datagrams returned", [
    ['size="1"', t[STAT.hist1]!],
    ['size="2"', t[STAT.hist2]!],
    ['size="3-4"', t[STAT.hist3to4]!],
    ['size="5-8"', t[STAT.hist5to8]!],
    ['size="9-16"', t[STAT.hist9to16]!],
  ]);
  out.metric("turn_udp_sendmmsg_flushes", "counter", "Send system calls (sendmmsg, or sendmsg for a run of one)", t[STAT.sendCalls]!);
  out.metric("turn_udp_sendmmsg_datagrams", "counter", "Datagrams sent by those calls", t[STAT.sendPackets]!);
  out.metric("bunturn_udp_send_errors_total", "counter", "Datagrams the kernel refused to send", t[STAT.sendErrors]!);
  out.metric("bunturn_udp_sendmmsg_unavailable_total", "counter", "sendmmsg refused by the kernel (switched to sendmsg)", t[STAT.sendUnavailable]!);

  const engines = source.engineCounters();
  out.metric("bunturn_engine_allocations", "gauge", "Allocations per relay engine (thread)", engines.map((b, i) => [`engine="${i}"`, b[protocolSlot("allocations")]!]));
  out.metric("bunturn_engine_relay_sockets", "gauge", "Relay sockets per relay engine (thread)", engines.map((b, i) => [`engine="${i}"`, b[GAUGE.relaySockets]!]));
  out.metric("bunturn_build_info", "gauge", "Always 1; the version in a label", [[`version="${labelValue(options.version)}"`, 1]]);
  out.metric("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds", options.startTime);
  return out.text();
}

export interface MetricsServerOptions extends MetricsOptions {
  address: string;
  port: number;
  path: string;
}

export interface MetricsServer {
  /** Where it listens, e.g. http://127.0.0.1:9641/metrics */
  readonly url: string;
  stop(): void;
}

/**
 * Starts the endpoint: GET `path` answers the metrics, GET / answers "ok" (coturn's health check),
 * other paths 404, other methods 405. Throws a plain Error naming the address when it cannot listen.
 */
export function startMetricsServer(source: MetricsSource, options: MetricsServerOptions, logger?: Logger): MetricsServer {
  const headers = { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" };
  const hostLabel = options.address.includes(":") ? `[${options.address}]` : options.address;
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: options.address,
      port: options.port,
      fetch(request) {
        if (request.method !== "GET" && request.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers });
        const path = new URL(request.url).pathname;
        if (path === options.path) return new Response(renderMetrics(source, options), { headers });
        if (path === "/") return new Response("ok\n", { headers });
        return new Response("not found\n", { status: 404, headers });
      },
      error(error) {
        logger?.error(`prometheus: ${error.message}`);
        return new Response("internal error\n", { status: 500, headers });
      },
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "EADDRINUSE" ? "address already in use" : (error as Error).message;
    throw new Error(`cannot listen on ${hostLabel}:${options.port} (prometheus): ${why}`);
  }
  return {
    url: `http://${hostLabel}:${server.port}${options.path}`,
    stop: () => void server.stop(true),
  };
}
