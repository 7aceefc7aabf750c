/**
 * coturn's `--prometheus` endpoint, served by Bun.serve in the main thread from the engines' shared
 * counter blocks (src/engine/counters.ts). A scrape reads a few hundred Float64 slots and formats text:
 * the engines never see it. Which metric shows which counter is in ./families.ts. Labels are bounded:
 * realm (one per server), type, family, direction, reason, batch size, engine index; never a username.
 */
import { SLOT } from "../engine/counters.ts";
import type { Logger } from "../logger.ts";
import type { CounterKind } from "../turn/counters.ts";
import { METRIC_FAMILIES } from "./families.ts";

/** What the endpoint reads: RelayServer implements it. */
export interface MetricsSource {
  /** Sum of every engine's counter block. */
  totals(): Float64Array;
  /** Each engine's own block (read-only views of shared memory). */
  engineCounters(): readonly Float64Array[];
  readonly relayPortsInUse: number;
  /** Draining (SIGUSR1): /ready answers 503. Absent = never. */
  readonly draining?: boolean;
  /** Metrics kept by the main thread itself (e.g. the network user database's state). */
  extraMetrics?(): readonly ExtraMetric[];
}

/** One sample without labels, from the main thread rather than the counter tables. */
export interface ExtraMetric {
  name: string;
  kind: CounterKind;
  help: string;
  value: number;
}

export interface MetricsOptions {
  realm: string;
  version: string;
  /** Unix seconds the process started, for process_start_time_seconds. */
  startTime: number;
}

class Exposition {
  private readonly lines: string[] = [];

  metric(name: string, kind: CounterKind, help: string, samples: Array<[labels: string, value: number]> | number): void {
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
  const totals = source.totals();
  const engines = source.engineCounters();
  const realm = `realm="${labelValue(options.realm)}"`;
  const out = new Exposition();
  for (const f of METRIC_FAMILIES) {
    if (f.perEngine) {
      const slot = SLOT[f.samples[0]![1]];
      out.metric(f.name, f.kind, f.help, engines.map((block, i) => [`engine="${i}"`, block[slot]!]));
    } else if (f.byRealm) {
      out.metric(f.name, f.kind, f.help, f.samples.map(([labels, counter]) => [labels ? `${realm},${labels}` : realm, totals[SLOT[counter]]!]));
    } else if (f.samples.length === 1 && f.samples[0]![0] === "") {
      out.metric(f.name, f.kind, f.help, totals[SLOT[f.samples[0]![1]]]!);
    } else {
      out.metric(f.name, f.kind, f.help, f.samples.map(([labels, counter]) => [labels, totals[SLOT[counter]]!]));
    }
  }
  out.metric("bunturn_relay_ports_in_use", "gauge", "Relay ports taken from the shared pool (sockets and EVEN-PORT reservations)", source.relayPortsInUse);
  out.metric("bunturn_draining", "gauge", "1 while draining (SIGUSR1): new Allocates are redirected or refused, live allocations go on", source.draining === true ? 1 : 0);
  for (const m of source.extraMetrics?.() ?? []) out.metric(m.name, m.kind, m.help, m.value);
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
 * GET /ready answers 200, or 503 while draining, other paths 404, other methods 405. Throws a plain Error naming the address when it cannot listen.
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
        // For load balancers: a draining server is alive (/) but takes no new allocations (/ready).
        if (path === "/ready") return source.draining === true ? new Response("draining\n", { status: 503, headers }) : new Response("ready\n", { headers });
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
