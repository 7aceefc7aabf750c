/**
 * The core's API says what can be expressed: ids of one kind do not pass for another (a TCP connection is
 * not a UDP listener), and a relay request is fresh (with a family) or a token (without one, since the
 * allocator knows the family a token was reserved with). The `@ts-expect-error` lines are checked by
 * `tsc --noEmit -p .`: each fails the type check if the line it marks ever compiles.
 */
import { expect, test } from "bun:test";
import {
  FIRST_CONNECTION_ID, connectionId, isConnection, listenerId, relayId, type ClientPath, type ListenerId, type RelayOpenRequest,
} from "../../src/turn/api.ts";

test("a connection id cannot pose as a listener id; the two are told apart by number", () => {
  const onListener = (id: ListenerId): ListenerId => id;
  const tcp = connectionId(FIRST_CONNECTION_ID + 7);
  // @ts-expect-error a TCP/TLS connection is not a UDP listener
  onListener(tcp);
  // @ts-expect-error a relay socket is not a listener either
  onListener(relayId(1));
  // @ts-expect-error a bare number is no id at all
  onListener(0);
  const paths: ClientPath[] = [listenerId(0), listenerId(3), tcp];
  expect(paths.map(isConnection)).toEqual([false, false, true]);
  // Brands are types only: at run time an id is the number itself (nothing allocated on the hot path).
  expect(typeof tcp).toBe("number");
});

test("a relay request is fresh or a token: a token carries no family to get wrong", () => {
  const fresh: RelayOpenRequest = { kind: "fresh", family: 6, evenPort: true, reserveNext: false };
  const token: RelayOpenRequest = { kind: "token", reservationToken: 1n };
  // @ts-expect-error a token request names no family (the allocator knows the reservation's)
  const wrong: RelayOpenRequest = { kind: "token", reservationToken: 1n, family: 4 };
  expect([fresh.kind, token.kind, wrong.kind]).toEqual(["fresh", "token", "token"]);
});
