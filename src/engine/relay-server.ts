/**
 * The main thread's facade over the whole server: checks the listening ports, starts the engines
 * (engine-workers.ts) with the shared port pool, capability flags and counter blocks, the fleet, the TLS
 * port (tls-service.ts), the stats line, the control socket and the Prometheus endpoint, routes what the
 * engines report, and stops everything cleanly. What the operator and the metrics ask of it once it runs
 * (counters, sessions, drain, certificate reload) is in relay-controls.ts, which it extends.
 */
import { createHandoffShared } from "./stream-handoff.ts";
import { UdpCapabilities } from "../../ffi/index.ts";
import type { RelayConfig } from "../config/resolve.ts";
import { SLOT } from "./counters.ts";
import { createHeapCensusShared } from "./heap-census.ts";
import { createQuotaShared } from "./quota.ts";
import { ConnectionLimits, createConnectionTable, type ConnectionTableShared } from "./connection-limits.ts";
import type { EngineEvent } from "./engine-init.ts";
import { CONTROL_STOP } from "./admission.ts";
import { startMetricsServer } from "../metrics/prometheus.ts";
import { ControlSocket } from "../metrics/control-socket.ts";
import { UsageLog, usageRecord } from "../metrics/usage.ts";
import type { RelayHooks } from "./engine-workers.ts";
import { StartupError, connectionCap, probeListeners } from "./startup-checks.ts";
import { Fleet, type LocalLoad } from "../fleet/fleet.ts";
import { VERSION } from "../version.ts";
import type { Logger } from "../logger.ts";
import { RelayControls } from "./relay-controls.ts";

export { StartupError, type RelayHooks };

export class RelayServer extends RelayControls {
  readonly listeners: string[] = [];
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private controlSocket: ControlSocket | undefined;
  private readonly usage: UsageLog;
  /** TCP and TLS connection counts, per source and in total, shared by the engines. */
  private readonly connectionTable: ConnectionTableShared = createConnectionTable();
  readonly connections: ConnectionLimits;
  /** What this relay shares with a fleet (nonce key, quotas, load, statistics); a fleet of one without options. */
  private fleet: Fleet | undefined;

  private constructor(config: RelayConfig, logger: Logger, hooks: RelayHooks) {
    super(config, logger, hooks);
    this.connections = new ConnectionLimits(this.connectionTable, { total: config.streams.maxConnections, perSource: config.streams.maxConnectionsPerIp });
    this.usage = new UsageLog(logger, config.usageLog);
  }

  static async start(config: RelayConfig, logger: Logger, hooks: RelayHooks = {}): Promise<RelayServer> {
    const listenAddresses = probeListeners(config, logger);
    const listeningIps = listenAddresses.map((l) => l.ip);
    const streams = { ...config.streams, maxConnections: connectionCap(config, logger) };
    const server = new RelayServer({ ...config, listeningIps, listenAddresses, streams }, logger, hooks);
    try {
      const fleet = (server.fleet = await Fleet.start(config, logger, { load: () => server.fleetLoad(), sessions: () => server.sessions() }));
      server.addMetrics(() => fleet.metrics());
    } catch (error) {
      await server.stop();
      throw new StartupError((error as Error).message);
    }
    try {
      server.tls?.check();
    } catch (error) {
      await server.stop();
      throw new StartupError(`cannot serve TLS on port ${config.tls!.port}: ${(error as Error).message}`);
    }
    try {
      server.listeners.push(...(await server.spawnEngines()));
    } catch (error) {
      await server.stop();
      throw error;
    }
    await server.fleet!.startStatistics();
    if (config.udpRecvmmsgLog) {
      server.statsTimer = setInterval(() => server.logRecvmmsgStats(), config.logStatsInterval * 1000);
    }
    // The engines listen on the TLS ports themselves (engine-listeners.ts); here the files are watched.
    if (server.tls) server.listeners.push(...server.tls.start(listeningIps, config.tlsProxyPort, () => server.reloadCertificate("certificate files changed")));
    if (config.controlSocket) {
      try {
        server.controlSocket = ControlSocket.start(config.controlSocket, server);
      } catch (error) {
        await server.stop();
        throw new StartupError(`cannot open the control socket: ${(error as Error).message}`);
      }
    }
    if (config.prometheus) {
      try {
        server.metrics = startMetricsServer(server, { ...config.prometheus, realm: config.realm, version: VERSION, startTime: Math.floor(Date.now() / 1000) }, logger);
      } catch (error) {
        await server.stop();
        throw new StartupError((error as Error).message);
      }
    }
    return server;
  }

  private spawnEngines(): Promise<string[]> {
    const { config } = this;
    const capabilityCells = UdpCapabilities.sharedCells({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg });
    const nonceSecret = this.fleet!.nonceSecret;
    // One set of quota counters for the whole server: --total-quota and --user-quota span every engine.
    const quota = createQuotaShared();
    this.fleet!.beat(quota);
    const handoff = createHandoffShared(config.relayThreads);
    return this.engines.start(config.relayThreads, (index) => ({
      index,
      config,
      pool: this.pool.shared,
      capabilityCells,
      counters: this.counters[index]!,
      control: this.control,
      nonceSecret,
      ...(this.fleet!.redirect ? { fleetRedirect: this.fleet!.redirect } : {}),
      quota,
      admin: this.admin.cells[index]!,
      connections: this.connectionTable,
      heapCensus: (this.heapCensusCells[index] = createHeapCensusShared()),
      handoff,
      certificateGeneration: this.certificateGeneration,
    }));
  }

  /** What the engines report besides their lifecycle: log lines, admin answers, ended allocations. */
  protected override onEngineEvent(event: EngineEvent): void {
    switch (event.kind) {
      case "log":
        this.logger[event.level](event.message);
        break;
      case "sessions":
      case "ended":
        this.admin.answer(event);
        break;
      case "usage": {
        const record = usageRecord(event.index, event.session, event.endedAt);
        this.usage.write(record);
        this.fleet?.ended(event.index, record, event.session);
        break;
      }
    }
  }

  /** What a fleet heartbeat publishes of this relay (src/fleet/fleet.ts). */
  private fleetLoad(): LocalLoad {
    const totals = this.totals();
    return { allocations: totals[SLOT.allocations]!, relayedBytes: totals[SLOT.clientToPeerBytes]! + totals[SLOT.peerToClientBytes]!, draining: this.draining };
  }

  /** Asks every engine to stop, waits until each has closed its sockets, then ends the Workers. */
  stop(): Promise<void> {
    this.stopping ??= this.stopEverything();
    return this.stopping;
  }

  private async stopEverything(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.metrics?.stop();
    this.controlSocket?.stop();
    this.tls?.stop();
    Atomics.store(this.control, CONTROL_STOP, 1);
    await this.engines.stop();
    await this.fleet?.stop();
  }
}
