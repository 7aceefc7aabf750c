/**
 * What crosses from the main thread into an engine's Worker (EngineInit: plain data and shared memory)
 * and back (EngineEvent), and what the engine asks of the protocol core it is handed (TurnCore).
 */
import type { RelayConfig } from "../config/resolve.ts";
import type { SessionInfo, TurnServer } from "../turn/server.ts";
import type { ConnectionTableShared } from "./connection-limits.ts";
import type { CoreIo } from "./core.ts";
import type { PortPoolShared } from "./port-pool.ts";
import type { QuotaShared } from "./quota.ts";
import type { HeapCensusShared } from "./heap-census.ts";
import type { HandoffShared } from "./stream-handoff.ts";

export interface EngineInit {
  index: number;
  config: RelayConfig;
  pool: PortPoolShared;
  capabilityCells: Int32Array;
  /** This engine's counter block in shared memory (layout: src/engine/counters.ts). */
  counters: Float64Array;
  /** Cells set by the main thread (./admission.ts): CONTROL_STOP, CONTROL_DRAIN. */
  control: Int32Array;
  /**
   * This engine's operator requests (ADMIN in ./admin-channel.ts): the main thread writes an op and its
   * argument, bumps the sequence number and wakes the engine through its eventfd; the engine answers by
   * postMessage (a Worker blocked in epoll_wait never receives one, but it can send).
   */
  admin?: Int32Array;
  nonceSecret: Uint8Array;
  /** The fleet's redirect target (./fleet-redirect.ts); absent without --fleet-redis. */
  fleetRedirect?: Int32Array;
  /** Allocation and bandwidth counts shared by every engine (coturn --user-quota, --total-quota, --bps-capacity). */
  quota: QuotaShared;
  /**
   * Certificate generations (tls-service.ts): cell 0 is bumped by the main thread at each reload
   * (SIGUSR2, the files changed); the engine loads the files again (TLS and DTLS contexts) and stores
   * the generation its TLS context has in cell 1 + index.
   */
  certificateGeneration?: Int32Array;
  /** TCP/TLS connection counts shared by every engine; absent = this engine's own. */
  connections?: ConnectionTableShared;
  /** Mailboxes for client connections moved between engines (stream-handoff.ts: RFC 6062 ConnectionBind); absent = one engine. */
  handoff?: HandoffShared;
  /** Where the main thread asks for a count of this engine's live heap (heap-census.ts). */
  heapCensus?: HeapCensusShared;
}

export type EngineEvent =
  | { kind: "ready"; index: number; wakeFd: number; listeners: string[] }
  | { kind: "log"; level: "info" | "warn" | "error" | "debug"; message: string }
  | { kind: "failed"; index: number; message: string }
  | { kind: "stopped"; index: number }
  | { kind: "sessions"; index: number; seq: number; sessions: SessionInfo[] }
  | { kind: "ended"; index: number; seq: number; found: boolean }
  | { kind: "usage"; index: number; session: SessionInfo; endedAt: number };

/** What the loop asks of the protocol core (TurnServer, or a test's wrapper of one). */
export type TurnCore = Pick<
  TurnServer,
  "handleClientDatagram" | "handlePeerDatagram" | "handleClientClosed" | "handleTimeout" | "pollTimeout" | "hasAllocationOn" | "closeAll"
> & Partial<Pick<TurnServer, "sessions" | "endSession" | "handlePeerConnected" | "handlePeerAccepted" | "handlePeerConnectionClosed" | "handlePeerTraffic">>;

/** Builds the core once the engine's sink and relay allocator exist (src/engine/core.ts: buildTurnServer). */
export type CoreFactory = (io: CoreIo) => TurnCore;
