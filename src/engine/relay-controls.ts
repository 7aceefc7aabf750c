/**
 * What can be read and asked of a running relay from the main thread: the engines' counters (summed or
 * per engine), heap censuses, sessions and kills, drain, certificate reload, the recvmmsg stats line and
 * extra /metrics. The control socket, the Prometheus endpoint and the CLI's signals use it. RelayServer
 * (relay-server.ts) extends it with the start-up order and the shut-down; this is the state they share
 * and the questions answered from it, apart from the sequencing.
 */
import { formatRecvmmsgStats } from "../../ffi/index.ts";
import type { RelayConfig } from "../config/resolve.ts";
import { BLOCK_SLOTS, SLOT, counterBlocks, sumCounterBlocks } from "./counters.ts";
import { PortPool } from "./port-pool.ts";
import { requestHeapCensus, type HeapCensus, type HeapCensusShared } from "./heap-census.ts";
import type { EngineEvent } from "./engine-init.ts";
import { CONTROL_CELLS, CONTROL_DRAIN } from "./admission.ts";
import type { ExtraMetric, MetricsServer } from "../metrics/prometheus.ts";
import { EngineAdmin, type Session } from "./admin-channel.ts";
import { EngineWorkers, type RelayHooks } from "./engine-workers.ts";
import { TlsService, createCertificateCells } from "./tls-service.ts";
import type { Logger } from "../logger.ts";

export abstract class RelayControls {
  readonly config: RelayConfig;
  protected readonly logger: Logger;
  protected readonly engines: EngineWorkers;
  /** Shared with every engine: the stop and drain flags (admission.ts). */
  protected readonly control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_CELLS));
  protected readonly counters: Float64Array[];
  protected readonly heapCensusCells: HeapCensusShared[] = [];
  /**
   * Bumped at each certificate reload; the engines reload their TLS and DTLS contexts when they see it
   * move, and confirm the TLS one (tls-service.ts).
   */
  protected readonly certificateGeneration: Int32Array;
  protected readonly pool: PortPool;
  private lastLoggedCalls = 0;
  /** Set once stop() is called: the engines take no more operator requests. */
  protected stopping: Promise<void> | undefined;
  protected metrics: MetricsServer | undefined;
  private readonly metricProviders: Array<() => readonly ExtraMetric[]> = [];
  /** Operator requests to the engines (sessions, kill). */
  protected readonly admin: EngineAdmin;
  /** Set with --cert/--pkey: the certificate checked before the engines start, its files watched after. */
  protected readonly tls: TlsService | undefined;

  protected constructor(config: RelayConfig, logger: Logger, hooks: RelayHooks) {
    this.config = config;
    this.logger = logger;
    this.counters = counterBlocks(new SharedArrayBuffer(config.relayThreads * BLOCK_SLOTS * 8), config.relayThreads);
    this.pool = new PortPool(PortPool.createShared(config.minPort, config.maxPort));
    this.engines = new EngineWorkers(hooks, logger, (event) => this.onEngineEvent(event));
    this.admin = new EngineAdmin(
      config.relayThreads,
      (index) => this.engines.wake(index),
      (index) => this.engines.serving(index) && !this.stopping,
    );
    this.certificateGeneration = createCertificateCells(config.relayThreads);
    if (config.tls) {
      this.tls = new TlsService(config.tls, this.certificateGeneration, () => {
        for (let i = 0; i < config.relayThreads; i++) this.engines.wake(i);
      }, logger);
    }
  }

  /** What the engines report besides their lifecycle: log lines, admin answers, ended allocations. */
  protected abstract onEngineEvent(event: EngineEvent): void;

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
}
