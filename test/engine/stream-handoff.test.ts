/**
 * Moving a client connection between engines for RFC 6062 §5.4 (src/engine/stream-handoff.ts,
 * connection-bind-route.ts): what crosses the mailbox, when a post is refused, and which frames are
 * ConnectionBinds for which engine.
 */
import { describe, expect, test } from "bun:test";
import { EventFd } from "../../ffi/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { StunClass, StunMethod, StunWriter, writeConnectionId, writeText, Attr } from "../../src/stun/index.ts";
import { connectionBindTarget } from "../../src/engine/connection-bind-route.ts";
import { HANDOFF_BYTES, StreamHandoff, createHandoffShared, type HandedConnection } from "../../src/engine/stream-handoff.ts";
import { ConnectionIds, engineOfConnectionId } from "../../src/engine/tcp-relay-ids.ts";

function handed(fd: number, bytes = new Uint8Array([1, 2, 3])): HandedConnection {
  // An OpenSSL session's address as x86-64 user space has them (above 2^32): it must cross whole.
  return { fd, client: parseEndpoint("2001:db8::5", 40000), tls: true, session: 0x7f12_3456_7898, onSocket: false, counted: false, bytes, openedAt: 1_700_000_123_456 };
}

describe("StreamHandoff", () => {
  test("a posted connection reaches its engine whole (fd, client, flags, bytes), and wakes it", () => {
    const shared = createHandoffShared(2);
    const wake = new EventFd();
    try {
      const owner = new StreamHandoff(shared, 1);
      owner.publish(wake.fd);
      const other = new StreamHandoff(shared, 0);
      expect(other.post(1, handed(77))).toBe(true);
      expect(wake.drain()).toBe(1);
      const got: HandedConnection[] = [];
      owner.receive((c) => got.push(c));
      expect(got).toHaveLength(1);
      expect(got[0]!.fd).toBe(77);
      expect(got[0]!.client.key).toBe(parseEndpoint("2001:db8::5", 40000).key);
      expect(got[0]!.tls).toBe(true);
      expect(got[0]!.session).toBe(0x7f12_3456_7898);
      expect(got[0]!.onSocket).toBe(false);
      expect(got[0]!.counted).toBe(false);
      expect([...got[0]!.bytes]).toEqual([1, 2, 3]);
      expect(got[0]!.openedAt).toBe(1_700_000_123_000); // whole seconds: its idle clock goes on
      owner.receive((c) => got.push(c));
      expect(got).toHaveLength(1); // taken once
    } finally {
      wake.close();
    }
  });

  test("refused (the caller keeps the fd): an engine that has not started, itself, no such engine, too many bytes, a full mailbox", () => {
    const shared = createHandoffShared(2);
    const wake = new EventFd();
    try {
      const sender = new StreamHandoff(shared, 0);
      expect(sender.post(1, handed(5))).toBe(false); // engine 1 has published no eventfd yet
      new StreamHandoff(shared, 1).publish(wake.fd);
      expect(sender.post(0, handed(5))).toBe(false);
      expect(sender.post(2, handed(5))).toBe(false);
      expect(sender.post(1, handed(5, new Uint8Array(HANDOFF_BYTES + 1)))).toBe(false);
      let posted = 0;
      while (sender.post(1, handed(5))) posted++;
      expect(posted).toBe(32);
    } finally {
      wake.close();
    }
  });
});

describe("CONNECTION-IDs and ConnectionBind routing", () => {
  test("an id names the engine that minted it, is never 0, and is not reused while taken", () => {
    const ids = new ConnectionIds(5);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const id = ids.mint((n) => seen.has(n));
      expect(id).not.toBe(0);
      expect(engineOfConnectionId(id)).toBe(5);
      expect(ids.isOurs(id)).toBe(true);
      seen.add(id);
    }
    expect(seen.size).toBe(1000);
  });

  test("connectionBindTarget reads the CONNECTION-ID of a ConnectionBind request, after other attributes, and nothing else", () => {
    const tid = new Uint8Array(12);
    const bind = new StunWriter(StunMethod.ConnectionBind, StunClass.Request, tid);
    writeText(bind, Attr.Username, "alice");
    writeConnectionId(bind, 0x1234abcd);
    expect(connectionBindTarget(bind.finish())).toBe(0x1234abcd);
    const connect = new StunWriter(StunMethod.Connect, StunClass.Request, tid);
    writeConnectionId(connect, 0x1234abcd);
    expect(connectionBindTarget(connect.finish())).toBe(-1);
    expect(connectionBindTarget(new StunWriter(StunMethod.ConnectionBind, StunClass.Request, tid).finish())).toBe(-1);
    expect(connectionBindTarget(new Uint8Array([0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]))).toBe(-1);
  });
});
