/** The /metrics page: coturn's names, the values of the shared counter blocks, valid text format. */
import { afterAll, describe, expect, test } from "bun:test";
import { BLOCK_SLOTS, COUNTERS, COUNTER_NAMES, SLOT, counterBlocks, sumCounterBlocks } from "../../src/engine/counters.ts";
import { labelValue, renderMetrics, startMetricsServer, type MetricsSource } from "../../src/metrics/prometheus.ts";

function source(engines = 2): MetricsSource & { blocks: Float64Array[] } {
  const blocks = counterBlocks(new SharedArrayBuffer(engines * BLOCK_SLOTS * 8), engines);
  return {
    blocks,
    totals: () => sumCounterBlocks(blocks),
    engineCounters: () => blocks,
    relayPortsInUse: 7,
  };
}

/** name{labels} -> value, from the text format; checks every sample has a TYPE line before it. */
function parse(text: string): Map<string, number> {
  return new Map([...parseTyped(text)].map(([sample, { value }]) => [sample, value]));
}

/** name{labels} -> its value and its metric's TYPE. */
function parseTyped(text: string): Map<string, { value: number; type: string }> {
  const out = new Map<string, { value: number; type: string }>();
  const typed = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\w+) (counter|gauge)$/.exec(line);
    if (type) {
      typed.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    if (!typed.has(m[1]!)) throw new Error(`sample before its TYPE: ${line}`);
    out.set(m[1]! + (m[2] ?? ""), { value: Number(m[3]), type: typed.get(m[1]!)! });
  }
  return out;
}

const OPTIONS = { realm: "example.org", version: "9.9.9", startTime: 1700000000 };

describe("renderMetrics", () => {
  test("coturn's metric names, summed over engines", () => {
    const s = source();
    const [a, b] = s.blocks;
    a![SLOT.allocations] = 3;
    b![SLOT.allocations] = 4;
    a![SLOT.bindingRequests] = 10;
    b![SLOT.bindingRequests] = 5;
    a![SLOT.bindingResponses] = 14;
    a![SLOT.bindingErrors] = 1;
    a![SLOT.clientPacketsIn] = 100;
    b![SLOT.clientBytesIn] = 5000;
    a![SLOT.clientPacketsOut] = 90;
    a![SLOT.clientBytesOut] = 4500;
    a![SLOT.peerPacketsIn] = 80;
    a![SLOT.peerBytesIn] = 4000;
    a![SLOT.clientToPeerPackets] = 70;
    b![SLOT.clientToPeerBytes] = 3500;
    a![SLOT.relays4] = 6;
    b![SLOT.relays6] = 2;
    a![SLOT.unauthorized] = 9;
    a![SLOT.dropped] = 11;
    b![SLOT.ttlDropped] = 2;
    a![SLOT.calls] = 50;
    b![SLOT.packets] = 120;
    a![SLOT.hist9to16] = 3;
    a![SLOT.sendCalls] = 40;
    b![SLOT.sendPackets] = 130;
    const m = parse(renderMetrics(s, OPTIONS));
    expect(m.get('turn_total_allocations{type="UDP"}')).toBe(7);
    expect(m.get("stun_binding_request")).toBe(15);
    expect(m.get("stun_binding_response")).toBe(14);
    expect(m.get("stun_binding_error")).toBe(1);
    expect(m.get('turn_traffic_rcvp{realm="example.org"}')).toBe(100);
    expect(m.get("turn_total_traffic_rcvp")).toBe(100);
    expect(m.get("turn_total_traffic_rcvb")).toBe(5000);
    expect(m.get("turn_total_traffic_sentp")).toBe(90);
    expect(m.get("turn_total_traffic_sentb")).toBe(4500);
    expect(m.get("turn_total_traffic_peer_rcvp")).toBe(80);
    expect(m.get("turn_total_traffic_peer_rcvb")).toBe(4000);
    expect(m.get("turn_total_traffic_peer_sentp")).toBe(70);
    expect(m.get('turn_traffic_peer_sentb{realm="example.org"}')).toBe(3500);
    expect(m.get('bunturn_relay_addresses{family="ipv4"}')).toBe(6);
    expect(m.get('bunturn_relay_addresses{family="ipv6"}')).toBe(2);
    expect(m.get("bunturn_unauthorized_total")).toBe(9);
    expect(m.get('bunturn_packets_dropped_total{reason="protocol"}')).toBe(11);
    expect(m.get('bunturn_packets_dropped_total{reason="ttl"}')).toBe(2);
    expect(m.get("turn_udp_recvmmsg_calls")).toBe(50);
    expect(m.get("turn_udp_recvmmsg_packets")).toBe(120);
    expect(m.get('bunturn_udp_recvmmsg_batches_total{size="9-16"}')).toBe(3);
    expect(m.get("turn_udp_sendmmsg_flushes")).toBe(40);
    expect(m.get("turn_udp_sendmmsg_datagrams")).toBe(130);
    expect(m.get("bunturn_relay_ports_in_use")).toBe(7);
    expect(m.get('bunturn_engine_allocations{engine="0"}')).toBe(3);
    expect(m.get('bunturn_engine_allocations{engine="1"}')).toBe(4);
    expect(m.get('bunturn_build_info{version="9.9.9"}')).toBe(1);
    expect(m.get("process_start_time_seconds")).toBe(1700000000);
  });

  test("no username ever becomes a label; label values are escaped", () => {
    const text = renderMetrics(source(1), { ...OPTIONS, realm: 'a"b\\c\nd' });
    expect(text).toContain('turn_traffic_rcvp{realm="a\\"b\\\\c\\nd"} 0');
    expect(text).not.toMatch(/user=/);
    expect(labelValue("plain")).toBe("plain");
  });
});

describe("startMetricsServer", () => {
  const s = source(1);
  const server = startMetricsServer(s, { ...OPTIONS, address: "127.0.0.1", port: 0, path: "/custom/metrics" });
  afterAll(() => server.stop());
  const base = server.url.replace("/custom/metrics", "");

  test("GET path: the metrics; GET /: ok; other paths 404; POST 405", async () => {
    s.blocks[0]![SLOT.allocations] = 5;
    const r = await fetch(server.url);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(parse(await r.text()).get('turn_total_allocations{type="UDP"}')).toBe(5);
    const health = await fetch(`${base}/`);
    expect([health.status, (await health.text()).trim()]).toEqual([200, "ok"]);
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    expect((await fetch(server.url, { method: "POST" })).status).toBe(405);
  });

  test("every counter of the block reaches /metrics, under a metric of its kind", async () => {
    // Two engines' blocks in shared memory, every slot a value no other slot, sum or fixed metric has.
    const engines = source(2);
    const [a, b] = engines.blocks;
    COUNTER_NAMES.forEach((name, i) => {
      a![SLOT[name]] = 1_000_000 * (i + 1) + 7;
      b![SLOT[name]] = 3;
    });
    const server = startMetricsServer(engines, { ...OPTIONS, address: "127.0.0.1", port: 0, path: "/metrics" });
    try {
      const samples = [...parseTyped(await (await fetch(server.url)).text())];
      const unpublished: string[] = [];
      for (const name of COUNTER_NAMES) {
        const own = [a![SLOT[name]]!, a![SLOT[name]]! + b![SLOT[name]]!];
        const shown = samples.filter(([, s]) => own.includes(s.value));
        if (shown.length === 0) unpublished.push(name);
        for (const [sample, s] of shown) expect(`${sample} ${s.type}`).toBe(`${sample} ${COUNTERS[name].kind}`);
      }
      expect(unpublished).toEqual([]);
      expect(COUNTER_NAMES.length).toBe(BLOCK_SLOTS);
    } finally {
      server.stop();
    }
  });

  test("a port in use is one clear error", () => {
    const port = Number(new URL(server.url).port);
    expect(() => startMetricsServer(s, { ...OPTIONS, address: "127.0.0.1", port, path: "/metrics" })).toThrow(
      `cannot listen on 127.0.0.1:${port} (prometheus): address already in use`,
    );
  });
});
