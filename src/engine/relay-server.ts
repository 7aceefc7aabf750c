/**
 * The main thread's facade over the whole server: checks the listening ports, starts the engines
 * (engine-workers.ts) with the shared port pool, capability flags and counter blocks, the TLS port
 * (tls-service.ts), the control socket and the Prometheus endpoint, answers what the operator and the
 * metrics ask (counters, sessions, drain, certificate reload), prints the recvmmsg stats line, and stops
 * everything cleanly.
 */
import { createHandoffShared } from "./stream-handoff.ts";
import { UdpCapabilities, formatRecvmmsgStats } from "../../ffi/index.ts";
import type { RelayConfig } from "../config/resolve.ts";
import { BLOCK_SLOTS, SLOT, counterBlocks, sumCounterBlocks } from "./counters.ts";
import { PortPool } from "./port-pool.ts";
import { createHeapCensusShared, requestHeapCensus, type HeapCensus, type HeapCensusShared } from "./heap-census.ts";
import { createQuotaShared } from "./quota.ts";
import { ConnectionLimits, createConnectionTable, type ConnectionTableShared } from "./connection-limits.ts";
import type { EngineEvent } from "./engine-init.ts";
import { CONTROL_CELLS, CONTROL_DRAIN, CONTROL_STOP } from "./admission.ts";
import { startMetricsServer, type ExtraMetric, type MetricsServer } from "../metrics/prometheus.ts";
import { ControlSocket } from "../metrics/control-socket.ts";
import { UsageLog, usageRecord } from "../metrics/usage.ts";
import { EngineAdmin, type Session } from "./admin-channel.ts";
import { EngineWorkers, type RelayHooks } from "./engine-workers.ts";
import { StartupError, connectionCap, probeListeners } from "./startup-checks.ts";
import { TlsService, createCertificateCells } from "./tls-service.ts";
import { Fleet, type LocalLoad } from "../fleet/fleet.ts";
import { VERSION } from "../version.ts";
import type { Logger } from "../logger.ts";

export { StartupError, type RelayHooks };

export class RelayServer {
  readonly config: RelayConfig;
  readonly listeners: string[] = [];
  private readonly logger: Logger;
  private readonly engines: EngineWorkers;
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_CELLS));
  private readonly counters: Float64Array[];
  private readonly heapCensusCells: HeapCensusShared[] = [];
  /**
   * Bumped at each certificate reload; the engines reload their TLS and DTLS contexts when they see it
   * move, and confirm the TLS one (tls-service.ts).
   */
  private readonly certificateGeneration: Int32Array;
  private readonly pool: PortPool;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private lastLoggedCalls = 0;
  private stopping: Promise<void> | undefined;
  private metrics: MetricsServer | undefined;
  private controlSocket: ControlSocket | undefined;
  private readonly metricProviders: Array<() => readonly ExtraMetric[]> = [];
  /** Operator requests to the engines (sessions, kill). */
  private readonly admin: EngineAdmin;
  private readonly usage: UsageLog;
  /** Set with --cert/--pkey: the certificate checked before the engines start, its files watched after. */
  private readonly tls: TlsService | undefined;
  /** TCP and TLS connection counts, per source and in total, shared by the engines. */
  private readonly connectionTable: ConnectionTableShared = createConnectionTable();
  readonly connections: ConnectionLimits;
  /** What this relay shares with a fleet (nonce key, quotas, load, statistics); a fleet of one without options. */
  private fleet: Fleet | undefined;

  private constructor(config: RelayConfig, logger: Logger, hooks: RelayHooks) {
    this.config = config;
    this.logger = logger;
    this.connections = new ConnectionLimits(this.connectionTable, { total: config.streams.maxConnections, perSource: config.streams.maxConnectionsPerIp });
    this.counters = counterBlocks(new SharedArrayBuffer(config.relayThreads * BLOCK_SLOTS * 8), config.relayThreads);
    this.pool = new PortPool(PortPool.createShared(config.minPort, config.maxPort));
    this.engines = new EngineWorkers(hooks, logger, (event) => this.onEngineEvent(event));
    this.admin = new EngineAdmin(
      config.relayThreads,
      (index) => this.engines.wake(index),
      (index) => this.engines.serving(index) && !this.stopping,
    );
    this.usage = new UsageLog(logger, config.usageLog);
    this.certificateGeneration = createCertificateCells(config.relayThreads);
    if (config.tls) {
      this.tls = new TlsService(config.tls, this.certificateGeneration, () => {
        for (let i = 0; i < config.relayThreads; i++) this.engines.wake(i);
      }, logger);
    }
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
  private onEngineEvent(event: EngineEvent): void {
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

  /** Sum of every engine's counter block, every slot (`SLOT` in counters.ts says which is which). */
  totals(): Float64Array {
    return sumCounterBlocks(this.counters);
  }

  /** Each engine's own counter block: live views of shared memory, for per-engine metrics. */
  engineCounters(): readonly Float64Array[] {
    return this.counters;
  }

  /**
   * What each engine keeps alive after a full garbage collection of its Worker (heap-census.ts): exact
   * figures for leak checks, where the process's RSS only moves with collection timing. Each engine
   * pauses for its collection.
   */
  heapCensus(): Promise<HeapCensus[]> {
    return Promise.all(this.heapCensusCells.map((cells, index) => requestHeapCensus(cells, () => this.engines.wake(index))));
  }

  /** Every live allocation on every engine (`bunturn admin sessions`). */
  sessions(): Promise<Session[]> {
    return this.admin.sessions();
  }

  /** Ends session `id` ("ENGINE-SERIAL", from sessions()); false when there is none (`bunturn admin kill`). */
  endSession(id: string): Promise<boolean> {
    return this.admin.end(id);
  }

  /** The Prometheus endpoint's URL, when --prometheus is on. */
  get metricsUrl(): string | undefined {
    return this.metrics?.url;
  }

  get allocations(): number {
    return this.totals()[SLOT.allocations]!;
  }

  get relayPortsInUse(): number {
    return this.pool.countTaken();
  }

  /** coturn's stats line, summed over all engines; only when recvmmsg was called since the last line. */
  logRecvmmsgStats(): void {
    const totals = this.totals();
    const calls = totals[SLOT.calls]!;
    if (calls === this.lastLoggedCalls) return;
    this.lastLoggedCalls = calls;
    this.logger.info(formatRecvmmsgStats(totals));
  }

  /**
   * coturn's drain (SIGUSR1): from the next Allocate on, every engine redirects new allocations to an
   * alternate server or refuses them (403); Refresh, permissions, channels and relayed data go on. The
   * caller watches `allocations` and stops when they are few enough (src/cli/drain.ts).
   */
  drain(): void {
    Atomics.store(this.control, CONTROL_DRAIN, 1);
  }

  get draining(): boolean {
    return Atomics.load(this.control, CONTROL_DRAIN) !== 0;
  }

  /** Adds main-thread metrics to /metrics (the network user database's state, src/userdb/mirror.ts). */
  addMetrics(provider: () => readonly ExtraMetric[]): void {
    this.metricProviders.push(provider);
  }

  extraMetrics(): readonly ExtraMetric[] {
    return this.metricProviders.flatMap((provider) => provider());
  }

  /**
   * coturn's SIGUSR2, or the certificate files changed: the engines load the certificate and key again
   * for new connections (TlsService.reloadCertificate); TLS connections already open keep their sessions.
   */
  reloadCertificate(cause: string): void {
    if (this.tls?.serving) {
      // Once the pair loads, the generation moves: the engines' TLS and DTLS contexts both follow it.
      this.tls.reloadCertificate(cause);
      return;
    }
    if (this.config.dtls) {
      // Each engine loads the DTLS certificate again at its next turn (within a second).
      Atomics.add(this.certificateGeneration, 0, 1);
      this.logger.info(`${cause}: DTLS certificate reload asked of the relay threads`);
      return;
    }
    this.logger.info(`${cause}: no TLS listener, no certificate to reload`);
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
