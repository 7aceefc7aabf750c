/**
 * What the load generator (loadgen.ts) sends, per client: the bytes of each message and when a message
 * is due. Three shapes, all ChannelData on channel 0x4000:
 *   window: one datagram of `size` bytes per reply, `window` in flight (the closed loop of `ceiling`);
 *   burst:  bursts of `burst` equal datagrams back to back, one burst per `burst` replies, `window`
 *           bursts in flight (closed loop: as fast as the relay answers);
 *   call:   paced, like a video call: `fps` frames a second of `frameBytes` cut into `rtpSize`-byte
 *           datagrams (the last shorter), plus `audioPps` datagrams a second of `audioSize` bytes; the
 *           echo peer sends it all back, so the relay carries both directions.
 * With GSO a burst or a frame is one message the kernel cuts at the datagram size (bench/lib/gso.ts).
 */
import { encodeChannelData } from "../../src/stun/index.ts";
import { repeat } from "./gso.ts";

export type ShapeName = "window" | "burst" | "call";

export interface ShapeOptions {
  shape: ShapeName;
  size: number;
  window: number;
  burst: number;
  fps: number;
  frameBytes: number;
  rtpSize: number;
  audioSize: number;
  audioPps: number;
}

/** One message: its bytes (one datagram, or a GSO train) and how many datagrams it is. */
export interface Message {
  bytes: Uint8Array;
  datagrams: number;
}

const channelData = (bytes: number) => encodeChannelData(0x4000, new Uint8Array(bytes).fill(0x5a));

/** Splits a message into its datagrams' messages, for a load generator sending without GSO. */
function datagramsOf(lengths: number[]): Message[] {
  return lengths.map((n) => ({ bytes: channelData(n), datagrams: 1 }));
}

export class Shape {
  /** The largest datagram on the wire (ChannelData header included): the GSO segment size. */
  readonly segment: number;
  /** Window/burst shapes: the message(s) sent per unit; call shape: one video frame. */
  readonly unit: Message[];
  /** Call shape: one audio datagram. */
  readonly audio: Message;
  /** Datagrams per unit. */
  readonly unitDatagrams: number;
  readonly frameIntervalMs: number;
  readonly audioIntervalMs: number;

  constructor(readonly o: ShapeOptions, gso: boolean) {
    this.audio = { bytes: channelData(o.audioSize), datagrams: 1 };
    this.frameIntervalMs = 1000 / o.fps;
    this.audioIntervalMs = 1000 / o.audioPps;
    let lengths: number[];
    if (o.shape === "call") {
      lengths = [];
      for (let left = o.frameBytes; left > 0; left -= o.rtpSize) lengths.push(Math.min(left, o.rtpSize));
    } else lengths = new Array<number>(o.shape === "burst" ? o.burst : 1).fill(o.size);
    this.unitDatagrams = lengths.length;
    this.segment = 4 + Math.max(...lengths, o.shape === "call" ? o.audioSize : 0);
    if (!gso || lengths.length === 1) this.unit = datagramsOf(lengths);
    else {
      // Equal segments and a shorter last one: one message (the frame's sizes are all rtpSize but the last).
      const full = lengths.filter((n) => n === lengths[0]).length;
      const head = repeat(channelData(lengths[0]!), full);
      const tail = lengths.slice(full).map((n) => channelData(n));
      const bytes = new Uint8Array(head.length + tail.reduce((t, b) => t + b.length, 0));
      bytes.set(head, 0);
      let at = head.length;
      for (const b of tail) {
        bytes.set(b, at);
        at += b.length;
      }
      this.unit = [{ bytes, datagrams: lengths.length }];
    }
  }
}
