/**
 * The main thread's connection to a Redis server (Bun's built-in RedisClient), for the fleet's shared
 * state. Nothing on the hot path waits on it: callers run commands from timers and keep their last good
 * data when one fails. Commands fail at once while the connection is down (no offline queue, and no
 * command left waiting to run after a reconnect, so nothing piles up), each is bounded in time, and the
 * client reconnects by itself. Going down and coming back
 * are each logged once per outage, and `up` says which state it is in.
 */
import { RedisClient } from "bun";
import type { RedisTarget } from "../config/redis-target.ts";
import type { Logger } from "../logger.ts";

/** The longest one command may take before it counts as failed (Redis answers loopback in microseconds). */
const COMMAND_TIMEOUT_MS = 1000;

export class RedisLink {
  private readonly client: RedisClient;
  private readonly connecting: Promise<unknown>;
  private down = false;
  private closed = false;
  /** Outages seen since start (a metric for the operator and the tests). */
  outages = 0;

  constructor(private readonly target: RedisTarget, private readonly logger: Logger, private readonly purpose: string, private readonly whileDown: string) {
    this.client = new RedisClient(target.url, {
      connectionTimeout: target.connectTimeoutMs,
      autoReconnect: true,
      maxRetries: 0xffffffff,
      enableOfflineQueue: false,
    });
    // The first connect keeps trying until Redis answers, and a lost connection is reconnected by the
    // client itself: commands meanwhile fail at once (send), instead of waiting to run later.
    this.connecting = this.client.connect().catch(() => {});
  }

  /** Waits (at most `timeoutMs`) for the first connection: at start, so the first commands can work. */
  async firstConnection(timeoutMs: number): Promise<void> {
    await Promise.race([this.connecting, Bun.sleep(timeoutMs)]);
  }

  get up(): boolean {
    return !this.down;
  }

  /** One command; rejects when Redis is down, refuses it, or takes longer than a second. */
  async send(command: string, args: string[]): Promise<unknown> {
    if (this.closed) throw new Error("closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const reply = await Promise.race([
        this.client.connected ? this.client.send(command, args) : Promise.reject(new Error("not connected")),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        }),
      ]);
      this.markUp();
      return reply;
    } catch (error) {
      this.markDown((error as Error).message);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  private markDown(why: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.outages++;
    this.logger.warn(`${this.purpose}: Redis ${this.target.display} unreachable (${why}); ${this.whileDown} until it is back`);
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.info(`${this.purpose}: Redis ${this.target.display} reachable again`);
  }
}
