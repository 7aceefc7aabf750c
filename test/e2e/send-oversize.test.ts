/**
 * A datagram the kernel refuses for itself, end to end: over TCP (RFC 8656 §3.1, no datagram limit on the
 * client's side) a client sends Send indications (§11.2) whose DATA is one byte larger than a UDP/IPv4
 * datagram can carry (65,508 bytes), between small ones, in one write: the relay socket's sendmmsg
 * sends the small ones and the kernel refuses the large ones (EMSGSIZE). They are dropped and counted in
 * bunturn_udp_send_refused_total, the small ones reach the peer, and sendmmsg stays on.
 */
import { expect } from "bun:test";
import type { Socket } from "bun";
import { Attr, StunClass, StunMethod, StunWriter, writeRequestedTransport, writeXorAddress } from "../../src/stun/index.ts";
import { EchoPeer } from "../fuzz/turn-client.ts";
import { closeAfterAll, e2eTest, pollUntil, scrapeMetrics, startBunturnWithMetrics } from "./harness.ts";

const { running, closers } = closeAfterAll();

const metrics = scrapeMetrics;

const until = (f: () => boolean | Promise<boolean>, ms = 5000) => pollUntil(f, ms);

const tid = () => crypto.getRandomValues(new Uint8Array(12));

e2eTest("Send indications too large for UDP are refused by the kernel: dropped and counted, the others relayed, sendmmsg on", async () => {
  const { server, url } = await startBunturnWithMetrics(running, {
    auth: "none",
    args: ["--relay-threads", "1"],
  });
  const peer = await EchoPeer.open();
  closers.push(() => peer.close());

  let received = 0; // bytes from the server: responses, then the peer's echoes as Data indications
  const client: Socket<undefined> = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data: (_s, d) => void (received += d.length) } });
  closers.push(() => client.end());
  const request = async (method: number, build: (w: StunWriter) => void) => {
    const before = received;
    const w = new StunWriter(method, StunClass.Request, tid());
    build(w);
    client.write(w.finish());
    expect(await until(() => received > before)).toBe(true);
  };
  await request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17));
  await request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer.endpoint));

  const send = (size: number) => {
    const w = new StunWriter(StunMethod.Send, StunClass.Indication, tid());
    writeXorAddress(w, Attr.XorPeerAddress, peer.endpoint);
    w.addBytes(Attr.Data, new Uint8Array(size).fill(7));
    return w.finish();
  };
  const small = send(100);
  const tooLarge = send(65_508); // 65,507 is the most a UDP/IPv4 datagram carries
  const burst = [small, tooLarge, small, tooLarge, small];
  const bytes = new Uint8Array(burst.reduce((n, b) => n + b.length, 0));
  burst.reduce((at, b) => (bytes.set(b, at), at + b.length), 0);
  client.write(bytes);
  expect(await until(() => peer.echoed === 3)).toBe(true);

  let m = await metrics(url);
  expect(await until(async () => (m = await metrics(url)).get("bunturn_udp_send_refused_total") === 2)).toBe(true);
  expect(m.get("bunturn_udp_send_errors_total")).toBe(2);
  expect(m.get("bunturn_udp_sendmmsg_unavailable_total")).toBe(0);
  expect(server.output()).not.toContain("sendmmsg refused by the kernel");
}, 30000);
