/**
 * The benches' echo peer with --gso (bench/lib/echo-peer.ts) sends a train back as one UDP_SEGMENT message
 * cut at the train's own datagram size, whatever the largest size it was started for: a receiver with
 * UDP_GRO then gets one buffer. (At 100-byte bursts it once sent each datagram alone, its segment size
 * being the 1200-byte RTP size: only half of a `ceiling --gso` load travelled as trains.)
 */
import { afterEach, describe, expect, test } from "bun:test";
import { CmsgInfo, RecvBatch, SendBatch, flushSendBatch, groSegmentCount, newStats, receiveBatch, receivedTtlTos } from "../../ffi/index.ts";
import { startEchoPeer } from "../../bench/lib/uclient-load.ts";
import { LOOPBACK4, SocketScope, waitReadable } from "../ffi/helpers.ts";

const scope = new SocketScope();
afterEach(() => scope.closeAll());

function datagram(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (seed * 31 + i) & 0xff);
}

describe("bench echo peer with --gso", () => {
  for (const peerGro of [false, true]) {
    test(`a train of 16 x 100 bytes and a shorter last comes back as trains cut at 100 (peer's UDP_GRO ${peerGro ? "on" : "off"})`, async () => {
      const peer = await startEchoPeer(10, 1, 1200, peerGro);
      try {
        const client = scope.open(4, { gso: true, gro: true, receiveTtlTos: true });
        const sent = [...Array.from({ length: 16 }, (_, k) => datagram(100, k)), datagram(60, 16)];
        const send = new SendBatch(64);
        for (const d of sent) send.push(client.udp, LOOPBACK4, peer.port, d);
        flushSendBatch(send, newStats());
        // The peer may wake while the kernel still delivers the burst to it (without UDP_GRO it comes as
        // 17 datagrams), so its echo can be more than one message: gather them all.
        const batch = new RecvBatch();
        const info = new CmsgInfo();
        const received: number[] = [];
        let messages = 0;
        let trains = 0;
        while (received.length < 1660 && waitReadable(client.fd, 3000)) {
          const n = receiveBatch(client.udp, batch, newStats());
          for (let i = 0; i < n; i++) {
            messages++;
            const d = batch.datagram(i);
            const groSize = receivedTtlTos(batch, i, info).groSize;
            if (groSegmentCount(d.length, groSize) > 1) {
              trains++;
              expect(groSize).toBe(100);
            }
            received.push(...d);
          }
        }
        expect(Uint8Array.from(received)).toEqual(Uint8Array.from(sent.flatMap((d) => Array.from(d))));
        expect(trains).toBeGreaterThan(0);
        expect(messages).toBeLessThan(sent.length);
        if (peerGro) expect(messages).toBe(1); // one GRO buffer in, one message out
      } finally {
        await peer.finish();
      }
    });
  }
});
