/**
 * The relay port pool (coturn --min-port/--max-port), shared by every engine through a SharedArrayBuffer:
 * one Int32 state cell per port, claimed with compare-and-swap, so two engines never hand out the same
 * port. Search starts at a random place, which spreads ports the way coturn's shuffled pool does.
 *
 * EVEN-PORT's R bit (RFC 8656 §7.2) holds port+1 under a 64-bit token for 30 s; the token carries the
 * port in its low 16 bits and the address family in bit 16, so any engine can redeem it (the client's
 * second Allocate may come in on a different engine's listener, whose core never saw the token).
 */

const FREE = 0;
const IN_USE = 1;
const RESERVED = 2;

export const RESERVATION_SECONDS = 30;

export interface PortPoolShared {
  min: number;
  max: number;
  states: Int32Array;
  /** Per port: reservation token (BigInt64) and its expiry (ms since epoch). */
  tokens: BigUint64Array;
  expiries: Float64Array;
}

export class PortPool {
  readonly shared: PortPoolShared;
  readonly min: number;
  readonly max: number;
  private readonly states: Int32Array;
  private readonly tokens: BigUint64Array;
  private readonly expiries: Float64Array;

  constructor(shared: PortPoolShared) {
    this.shared = shared;
    this.min = shared.min;
    this.max = shared.max;
    this.states = shared.states;
    this.tokens = shared.tokens;
    this.expiries = shared.expiries;
  }

  static createShared(min: number, max: number): PortPoolShared {
    if (!(min >= 1 && max <= 65535 && min <= max)) throw new RangeError(`bad port range ${min}-${max}`);
    const n = max - min + 1;
    return {
      min,
      max,
      states: new Int32Array(new SharedArrayBuffer(n * 4)),
      tokens: new BigUint64Array(new SharedArrayBuffer(n * 8)),
      expiries: new Float64Array(new SharedArrayBuffer(n * 8)),
    };
  }

  get size(): number {
    return this.max - this.min + 1;
  }

  /** Ports currently taken (in use or reserved), for metrics and leak checks. */
  countTaken(): number {
    let n = 0;
    for (let i = 0; i < this.states.length; i++) if (Atomics.load(this.states, i) !== FREE) n++;
    return n;
  }

  /**
   * Claims a free port (an even one if asked; with `pair`, also port+1 as RESERVED). Returns 0 when
   * none is free. `acceptable(port)` lets the caller skip a port the kernel refuses to bind, having
   * already claimed it: return false and the claim is released and the search goes on.
   */
  claim(even: boolean, pair: boolean, now: number, acceptable: (port: number) => boolean = () => true): number {
    const n = this.size;
    const start = Math.floor(Math.random() * n);
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const port = this.min + i;
      if ((even || pair) && port % 2 !== 0) continue;
      if (pair && port + 1 > this.max) continue;
      if (!this.take(i, now)) continue;
      if (pair && !this.take(i + 1, now)) {
        Atomics.store(this.states, i, FREE);
        continue;
      }
      if (!acceptable(port)) {
        this.release(port);
        if (pair) this.release(port + 1);
        continue;
      }
      if (pair) {
        Atomics.store(this.states, i + 1, RESERVED);
        this.expiries[i + 1] = now + RESERVATION_SECONDS * 1000;
      }
      return port;
    }
    return 0;
  }

  /** Sets a reservation token on a port claimed with `pair` (port+1): random, with port and family inside. */
  newToken(reservedPort: number, family: 4 | 6 = 4): bigint {
    const random = crypto.getRandomValues(new BigUint64Array(1))[0]!;
    const token = (random & ~0x1ffffn) | (family === 6 ? 0x10000n : 0n) | BigInt(reservedPort);
    this.tokens[reservedPort - this.min] = token;
    return token;
  }

  /** The address family a token was reserved for. */
  static tokenFamily(token: bigint): 4 | 6 {
    return token & 0x10000n ? 6 : 4;
  }

  /** Turns a reservation into a port in use. Returns 0 if the token is unknown or expired. */
  redeem(token: bigint, now: number): number {
    const port = Number(token & 0xffffn);
    if (port < this.min || port > this.max) return 0;
    const i = port - this.min;
    if (this.tokens[i] !== token || this.expiries[i]! < now) return 0;
    if (Atomics.compareExchange(this.states, i, RESERVED, IN_USE) !== RESERVED) return 0;
    this.tokens[i] = 0n;
    return port;
  }

  release(port: number): void {
    if (port < this.min || port > this.max) return;
    const i = port - this.min;
    this.tokens[i] = 0n;
    Atomics.store(this.states, i, FREE);
  }

  /** Takes cell i if free, or if it holds a reservation that has expired (reservations sweep lazily). */
  private take(i: number, now: number): boolean {
    if (Atomics.compareExchange(this.states, i, FREE, IN_USE) === FREE) return true;
    if (Atomics.load(this.states, i) === RESERVED && this.expiries[i]! < now) {
      if (Atomics.compareExchange(this.states, i, RESERVED, IN_USE) === RESERVED) {
        this.tokens[i] = 0n;
        return true;
      }
    }
    return false;
  }
}
