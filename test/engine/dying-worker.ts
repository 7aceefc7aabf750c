/**
 * A test Worker: the real Engine, which dies on a magic datagram the way an engine can die in the field,
 * its sockets left open in the process: "die:exit" ends the Worker at once, "die:throw" makes an exception
 * escape the engine's loop (uncaught in the Worker). The main thread must not go on half-served.
 */
import { workerData } from "node:worker_threads";
import { Engine, type EngineEvent, type EngineInit } from "../../src/engine/engine.ts";
import { buildTurnServer } from "../../src/engine/core.ts";

declare const self: Worker;

const init = workerData as EngineInit;
const post = (event: EngineEvent) => self.postMessage(event);
let doomed = false;
const engine = new Engine(init, post, (io) => {
  const turn = buildTurnServer(init, io);
  const handle = turn.handleClientDatagram.bind(turn);
  const pollTimeout = turn.pollTimeout.bind(turn);
  turn.handleClientDatagram = (listener, client, data, now, offset = 0, length = data.length - offset) => {
    const text = new TextDecoder().decode(data.subarray(offset, offset + length));
    if (text === "die:exit") process.exit(70);
    if (text === "die:throw") doomed = true;
    handle(listener, client, data, now, offset, length);
  };
  // The loop asks for the next timer outside its per-datagram guard: an exception there ends the engine.
  turn.pollTimeout = () => {
    if (doomed) throw new Error("injected engine death");
    return pollTimeout();
  };
  return turn;
});
const listeners = engine.openListeners();
post({ kind: "ready", index: init.index, wakeFd: engine.wakeFd, listeners });
engine.run();
post({ kind: "stopped", index: init.index });
