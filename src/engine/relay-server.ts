/**
 * The main thread's side: checks the listening ports, starts one engine Worker per relay thread with
 * the shared port pool, capability flags and counter blocks, prints the recvmmsg stats line, and stops
 * the engines cleanly (stop flag + eventfd, then wait for each to close its fds).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TlsFront } from "./tls-front.ts";
import { CertificateWatch } from "./tls-certificate.ts";
import { bunTlsSettings } from "./tls-settings.ts";
import { EventFd, SyscallError, UdpCapabilities, closeSocket, formatRecvmmsgStats, openTcpListener, openUdpSocket } from "../../ffi/index.ts";
import { EADDRNOTAVAIL, EAFNOSUPPORT } from "../../ffi/errno.ts";
import type { ListenAddress, RelayConfig } from "../config/resolve.ts";
import { BLOCK_SLOTS, SLOT, counterBlocks, sumCounterBlocks } from "./counters.ts";
import { PortPool } from "./port-pool.ts";
import { createHeapCensusShared, requestHeapCensus, type HeapCensus, type HeapCensusShared } from "./heap-census.ts";
import { createQuotaShared } from "./quota.ts";
import { ConnectionLimits, createConnectionTable, type ConnectionTableShared } from "./connection-limits.ts";
import { raiseDescriptorLimit } from "../../ffi/rlimit.ts";
import type { EngineEvent, EngineInit } from "./engine.ts";
import { CONTROL_CELLS, CONTROL_DRAIN, CONTROL_STOP } from "./admission.ts";
import { startMetricsServer, type MetricsServer } from "../metrics/prometheus.ts";
import { ControlSocket } from "../metrics/control-socket.ts";
import { UsageLog, usageRecord } from "../metrics/usage.ts";
import { EngineAdmin, type Session } from "./admin-channel.ts";
import { VERSION } from "../version.ts";
import type { Logger } from "../logger.ts";

/** A start-up failure the operator can act on (port in use, address not on this host). */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/** What the process does when an engine dies; see RelayServer.start. */
export interface RelayHooks {
  /**
   * An engine Worker died after start (an uncaught exception, or it exited). Its sockets stay open in
   * the process (fds are per process, not per thread) and its allocations are gone with its heap, so the
   * server cannot go on half-served: the caller stops and exits non-zero (src/cli/main.ts).
   */
  onEngineDeath?(message: string): void;
  /** The engine Worker's module; tests substitute one that dies on purpose. */
  engineEntry?: string;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export class RelayServer {
  readonly config: RelayConfig;
  readonly listeners: string[] = [];
  private readonly logger: Logger;
  private readonly workers: Worker[] = [];
  /** Engines whose Worker died: nothing to wait for at stop. */
  private readonly dead = new Set<number>();
  private readonly hooks: RelayHooks;
  private readonly wakeFds: number[] = [];
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_CELLS));
  private readonly counters: Float64Array[];
  private readonly heapCensusCells: HeapCensusShared[] = [];
  private readonly pool: PortPool;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private lastLoggedCalls = 0;
  private stopping: Promise<void> | undefined;
  private metrics: MetricsServer | undefined;
  private controlSocket: ControlSocket | undefined;
  /** Operator requests to the engines (sessions, kill). */
  private readonly admin: EngineAdmin;
  private readonly usage: UsageLog;
  private tls: TlsFront | undefined;
  private certificateWatch: CertificateWatch | undefined;
  /** A private directory (0700) for the engines' TLS hand-over sockets; removed at stop. */
  private readonly tlsDirectory: string | undefined;
  private readonly tlsSocketPaths: string[] = [];
  /** TCP and TLS connection counts, per source and in total, shared by the engines and the TLS front end. */
  private readonly connectionTable: ConnectionTableShared = createConnectionTable();
  readonly connections: ConnectionLimits;

  private constructor(config: RelayConfig, logger: Logger, hooks: RelayHooks) {
    this.config = config;
    this.logger = logger;
    this.hooks = hooks;
    this.connections = new ConnectionLimits(this.connectionTable, { total: config.streams.maxConnections, perSource: config.streams.maxConnectionsPerIp });
    this.counters = counterBlocks(new SharedArrayBuffer(config.relayThreads * BLOCK_SLOTS * 8), config.relayThreads);
    this.pool = new PortPool(PortPool.createShared(config.minPort, config.maxPort));
    this.admin = new EngineAdmin(
      config.relayThreads,
      (index) => {
        const fd = this.wakeFds[index];
        if (fd !== undefined) EventFd.signal(fd);
      },
      (index) => !this.dead.has(index) && this.wakeFds[index] !== undefined && !this.stopping,
    );
    this.usage = new UsageLog(logger, config.usageLog);
    if (config.tls) {
      this.tlsDirectory = mkdtempSync(join(tmpdir(), "bunturn-tls-"));
      chmodSync(this.tlsDirectory, 0o700);
      for (let i = 0; i < config.relayThreads; i++) this.tlsSocketPaths.push(join(this.tlsDirectory, `engine-${i}.sock`));
    }
  }

  static async start(config: RelayConfig, logger: Logger, hooks: RelayHooks = {}): Promise<RelayServer> {
    const listenAddresses = probeListeners(config, logger);
    const listeningIps = listenAddresses.map((l) => l.ip);
    const streams = { ...config.streams, maxConnections: connectionCap(config, logger) };
    const server = new RelayServer({ ...config, listeningIps, listenAddresses, streams }, logger, hooks);
    try {
      await server.spawnEngines();
    } catch (error) {
      await server.stop();
      throw error;
    }
    if (config.udpRecvmmsgLog) {
      server.statsTimer = setInterval(() => server.logRecvmmsgStats(), config.logStatsInterval * 1000);
    }
    if (config.tls) {
      try {
        server.tls = TlsFront.start({
          listeningIps,
          port: config.tls.port,
          cert: config.tls.cert,
          key: config.tls.key,
          settings: bunTlsSettings(config.tls),
          enginePaths: server.tlsSocketPaths,
          limits: server.connections,
          handshakeTimeoutMs: config.streams.tlsHandshakeTimeoutMs,
          maxBufferPerConnection: config.streams.maxBufferPerConnection,
          maxBufferTotal: config.streams.maxBufferPerEngine,
          onError: (message) => logger.warn(message),
        });
        server.listeners.push(...listeningIps.map((ip) => `${ip.includes(":") ? `[${ip}]` : ip}:${config.tls!.port} (TLS)`));
        logger.debug(`TLS certificate ${config.tls.cert}: ${server.tls.certificate}`);
        server.certificateWatch = new CertificateWatch([config.tls.cert, config.tls.key], () => server.reloadCertificate("certificate files changed"));
        server.certificateWatch.start();
      } catch (error) {
        await server.stop();
        throw new StartupError(`cannot serve TLS on port ${config.tls.port}: ${(error as Error).message}`);
      }
    }
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

  private spawnEngines(): Promise<void> {
    const { config } = this;
    const capabilityCells = UdpCapabilities.sharedCells({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg });
    const nonceSecret = new Uint8Array(randomBytes(32));
    // One set of quota counters for the whole server: --total-quota and --user-quota span every engine.
    const quota = createQuotaShared();
    let pending = config.relayThreads;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StartupError("relay engines did not start within 10 s")), START_TIMEOUT_MS);
      for (let index = 0; index < config.relayThreads; index++) {
        const init: EngineInit = {
          index,
          config,
          pool: this.pool.shared,
          capabilityCells,
          counters: this.counters[index]!,
          control: this.control,
          nonceSecret,
          quota,
          admin: this.admin.cells[index]!,
          connections: this.connectionTable,
          heapCensus: (this.heapCensusCells[index] = createHeapCensusShared()),
          ...(this.tlsSocketPaths.length ? { tlsSocketPath: this.tlsSocketPaths[index]! } : {}),
        };
        const worker = new Worker(this.hooks.engineEntry ?? workerEntry(), { workerData: init } as WorkerOptions);
        this.workers.push(worker);
        worker.addEventListener("message", (event: MessageEvent<EngineEvent>) => {
          const e = event.data;
          switch (e.kind) {
            case "ready":
              this.wakeFds[e.index] = e.wakeFd;
              if (e.index === 0) this.listeners.push(...e.listeners);
              if (--pending === 0) {
                clearTimeout(timer);
                resolve();
              }
              break;
            case "failed":
              clearTimeout(timer);
              reject(new StartupError(e.message));
              break;
            case "log":
              this.logger[e.level](e.message);
              break;
            case "stopped":
              break;
            case "sessions":
            case "ended":
              this.admin.answer(e);
              break;
            case "usage":
              this.usage.write(usageRecord(e.index, e.session, e.endedAt));
              break;
          }
        });
        // An uncaught exception ends the Worker: 'error' says why, then 'close' says it is gone.
        let cause = "";
        worker.addEventListener("error", (event) => {
          const e = event as ErrorEvent;
          // Bun's message carries a source excerpt; the line "error: <message>" is the one that matters.
          const line = e.message.split("\n").find((l) => l.startsWith("error: "));
          cause = e.error instanceof Error ? e.error.message : line ? line.slice(7) : e.message.split("\n")[0]!;
        });
        worker.addEventListener("close", (event) => {
          if (this.stopping) return;
          this.dead.add(index);
          const code = (event as CloseEvent).code;
          const message = `engine ${index} died (${cause || `exit code ${code}`})`;
          if (pending > 0) {
            clearTimeout(timer);
            reject(new StartupError(message));
          } else if (this.hooks.onEngineDeath) this.hooks.onEngineDeath(message);
          else this.logger.error(message);
        });
      }
    });
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
    return Promise.all(this.heapCensusCells.map((cells, index) => requestHeapCensus(cells, () => EventFd.signal(this.wakeFds[index]!))));
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

  /**
   * coturn's SIGUSR2, or the certificate files changed: the TLS front end loads the certificate and key
   * again (TlsFront.reloadCertificate); TLS connections already open keep their sessions. A pair that
   * does not load leaves the old one in use, and the log says why.
   */
  reloadCertificate(cause: string): void {
    const tls = this.tls;
    if (tls === undefined) {
      this.logger.info(`${cause}: no TLS listener, no certificate to reload`);
      return;
    }
    this.certificateWatch?.settle();
    const file = this.config.tls!.cert;
    try {
      tls.reloadCertificate();
      this.logger.info(`${cause}: TLS certificate reloaded from ${file} (${tls.certificate}); open TLS connections keep their sessions`);
    } catch (error) {
      this.logger.warn(`${cause}: TLS certificate NOT reloaded from ${file}: ${(error as Error).message}; still serving ${tls.certificate}`);
    }
  }

  /** Asks every engine to stop, waits until each has closed its sockets, then ends the Workers. */
  stop(): Promise<void> {
    this.stopping ??= this.stopEngines();
    return this.stopping;
  }

  private async stopEngines(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.metrics?.stop();
    this.certificateWatch?.stop();
    this.controlSocket?.stop();
    this.tls?.stop();
    Atomics.store(this.control, CONTROL_STOP, 1);
    const stopped = this.workers.map(
      (worker, index) =>
        new Promise<void>((resolve) => {
          if (this.dead.has(index)) return resolve();
          const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
          worker.addEventListener("message", (event: MessageEvent<EngineEvent>) => {
            if (event.data.kind === "stopped" || event.data.kind === "failed") {
              clearTimeout(timer);
              resolve();
            }
          });
        }),
    );
    for (const fd of this.wakeFds) if (fd !== undefined) EventFd.signal(fd);
    await Promise.all(stopped);
    for (const worker of this.workers) worker.terminate();
    if (this.tlsDirectory) rmSync(this.tlsDirectory, { recursive: true, force: true });
  }
}

/**
 * Where the engine Worker's code is. Inside a `bun build --compile` binary every module reports the
 * binary's own URL, and extra entry points are addressed relative to the bundle's root (src/), which
 * is how `npm run build` lists src/engine/worker.ts.
 */
function workerEntry(): string {
  return import.meta.url.includes("/$bunfs/") ? "./engine/worker.ts" : new URL("./worker.ts", import.meta.url).href;
}

/**
 * The cap on TCP and TLS client connections. The soft descriptor limit is raised to the hard one first
 * (every engine's and the TLS front end's sockets are descriptors of this one process). Without
 * --max-tcp-connections the cap is a quarter of the limit (at least 256): a TLS connection takes 3
 * descriptors (its socket and both ends of its hand-over stream), and the rest stays for relay sockets.
 * Reaching the limit anyway (relay sockets, other descriptors) parks the listeners instead of spinning.
 */
function connectionCap(config: RelayConfig, logger: Logger): number {
  const limit = raiseDescriptorLimit();
  const configured = config.streams.maxConnections;
  const cap = configured > 0 ? configured : Math.max(256, Math.floor(limit.soft / 4));
  if (config.tcp || config.tls) {
    logger.debug(
      `TCP/TLS clients: at most ${cap} connections${configured > 0 ? "" : " (a quarter of the descriptor limit)"}, ` +
        `${config.streams.maxConnectionsPerIp || "unlimited"} per source address; descriptor limit ${limit.soft}`,
    );
  }
  if (configured > 0 && configured * 3 > limit.soft) {
    logger.warn(`--max-tcp-connections ${configured} can exceed the descriptor limit (${limit.soft}; a TLS connection takes 3); raise LimitNOFILE or ulimit -n`);
  }
  return cap;
}

/**
 * Binds each listening address once without SO_REUSEPORT, so that a port held by another server
 * (which may itself use SO_REUSEPORT, as coturn does) is an error instead of silently shared. The
 * default IPv6 wildcard is dropped with a warning on hosts without IPv6.
 */
function probeListeners(config: RelayConfig, logger: Logger): ListenAddress[] {
  const usable: ListenAddress[] = [];
  for (const listen of config.listenAddresses) {
    const { ip, family, address, label } = listen;
    try {
      closeSocket(openUdpSocket({ family, address, port: config.listeningPort }));
      if (config.tcp) closeSocket(openTcpListener({ family, address, port: config.listeningPort }));

      usable.push(listen);
    } catch (error) {
      const errno = error instanceof SyscallError ? error.errno : 0;
      if (ip === "::" && (errno === EAFNOSUPPORT || errno === EADDRNOTAVAIL)) {
        logger.warn(`IPv6 is not available here; not listening on ${label}`);
        continue;
      }
      const why = error instanceof SyscallError && error.code === "EADDRINUSE" ? "address already in use" : String((error as Error).message);
      throw new StartupError(`cannot listen on ${label}: ${why}`);
    }
  }
  if (usable.length === 0) throw new StartupError("no listening address left");
  if (config.tcpProxyPort !== undefined) {
    for (const { family, address, ip } of usable) {
      try {
        closeSocket(openTcpListener({ family, address, port: config.tcpProxyPort }));
      } catch (error) {
        const why = error instanceof SyscallError && error.code === "EADDRINUSE" ? "address already in use" : String((error as Error).message);
        throw new StartupError(`cannot listen on ${family === 6 ? `[${ip}]` : ip}:${config.tcpProxyPort} (--tcp-proxy-port): ${why}`);
      }
    }
  }
  return usable;
}
