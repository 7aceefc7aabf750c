/**
 * A test Worker: the real Engine, whose protocol core throws on one magic datagram, so the test can see
 * the engine contain a bug (count it, log it, keep serving) instead of dying with its sessions.
 */
import { workerData } from "node:worker_threads";
import { Engine, type EngineEvent, type EngineInit } from "../../src/engine/engine.ts";
import { buildTurnServer } from "../../src/engine/core.ts";

declare const self: Worker;
import { MAGIC } from "./crash-magic.ts";

const post = (event: EngineEvent) => self.postMessage(event);
const init = workerData as EngineInit;
const engine = new Engine(init, post, (io) => {
  const turn = buildTurnServer(init, io);
  const handle = turn.handleClientDatagram.bind(turn);
  turn.handleClientDatagram = (listener, client, data, now, offset = 0, length = data.length - offset) => {
    if (new TextDecoder().decode(data.subarray(offset, offset + length)) === MAGIC) throw new Error("injected handler failure");
    handle(listener, client, data, now, offset, length);
  };
  return turn;
});
const listeners = engine.openListeners();
post({ kind: "ready", index: 0, wakeFd: engine.wakeFd, listeners });
engine.run();
post({ kind: "stopped", index: 0 });
