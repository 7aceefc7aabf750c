/**
 * RelaySockets on real loopback sockets: an EVEN-PORT reservation (R bit) is only made where port + 1
 * can be bound too, so that redeeming its token never fails for a port another process holds.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { UdpCapabilities, closeSocket, openUdpSocket } from "../../ffi/index.ts";
import { RelaySockets } from "../../src/engine/relay-sockets.ts";
import { PortPool } from "../../src/engine/port-pool.ts";
import { parseIp } from "../../src/net/endpoint.ts";
import type { RelayHandle } from "../../src/turn/api.ts";
import { relayRange } from "../ports.ts";

const LOOPBACK = parseIp("127.0.0.1")!;
const held: number[] = [];
afterEach(() => {
  for (const fd of held.splice(0)) closeSocket(fd);
});

function relaySockets(min: number, max: number): { sockets: RelaySockets; pool: PortPool } {
  const shared = PortPool.createShared(min, max);
  const sockets = new RelaySockets(
    {
      pool: shared,
      addresses: [{ family: 4, local: LOOPBACK, advertised: LOOPBACK }],
      bufferSize: 65536,
      caps: new UdpCapabilities({ recvmmsg: false, sendmmsg: true }),
    },
    { opened() {}, closing() {}, closed() {} },
  );
  return { sockets, pool: new PortPool(shared) };
}

describe("RelaySockets, EVEN-PORT with the R bit", () => {
  test("never reserves a port + 1 that another process holds; the token is redeemable every time", () => {
    const [start] = relayRange(8);
    const min = start % 2 === 0 ? start : start + 1;
    // Four even/odd pairs; another socket holds the odd port of the first three.
    for (const odd of [min + 1, min + 3, min + 5]) held.push(openUdpSocket({ family: 4, address: LOOPBACK, port: odd }));
    const { sockets } = relaySockets(min, min + 7);
    // The pool starts its search at a random port: repeat, so that a claim landing on a blocked pair shows.
    for (let round = 0; round < 20; round++) {
      const first = sockets.open({ kind: "fresh", family: 4, evenPort: true, reserveNext: true }, 0);
      expect(first.ok).toBe(true);
      if (!first.ok) return;
      expect(first.relay.address.port).toBe(min + 6);
      expect(first.reservationToken).toBeDefined();
      const second = sockets.open({ kind: "token", reservationToken: first.reservationToken! }, 0);
      expect(second.ok).toBe(true);
      if (!second.ok) return;
      expect(second.relay.address.port).toBe(min + 7);
      for (const relay of [first.relay, second.relay] as RelayHandle[]) sockets.close(relay);
    }
    expect(sockets.count).toBe(0);
  });

  test("with every port + 1 held, the Allocate gets 508 at once and no port stays taken", () => {
    const [start] = relayRange(4);
    const min = start % 2 === 0 ? start : start + 1;
    for (const odd of [min + 1, min + 3]) held.push(openUdpSocket({ family: 4, address: LOOPBACK, port: odd }));
    const { sockets, pool } = relaySockets(min, min + 3);
    const result = sockets.open({ kind: "fresh", family: 4, evenPort: true, reserveNext: true }, 0);
    expect(result).toEqual({ ok: false, code: 508 });
    expect(pool.countTaken()).toBe(0);
  });
});
