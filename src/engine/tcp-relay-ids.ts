/**
 * CONNECTION-IDs (RFC 6062 §6.2) of one engine: 32 bits, the top 6 naming the engine (so that a
 * ConnectionBind that reaches another engine can be handed to this one) and 26 random bits (so that an
 * id is not guessed from the last one). Never 0.
 */
const ENGINE_SHIFT = 26;
const RANDOM_MASK = (1 << ENGINE_SHIFT) - 1;

/** The engine that minted connection id `id`. */
export function engineOfConnectionId(id: number): number {
  return id >>> ENGINE_SHIFT;
}

export class ConnectionIds {
  private readonly random = new Uint32Array(64);
  private next = this.random.length;

  constructor(private readonly engineIndex: number) {
    if (engineIndex < 0 || engineIndex > 63) throw new RangeError(`engine index ${engineIndex}: connection ids have room for 64 engines`);
  }

  isOurs(id: number): boolean {
    return engineOfConnectionId(id) === this.engineIndex;
  }

  /** A fresh id for which `taken` is false. */
  mint(taken: (id: number) => boolean): number {
    for (;;) {
      if (this.next === this.random.length) {
        crypto.getRandomValues(this.random);
        this.next = 0;
      }
      const id = ((this.engineIndex << ENGINE_SHIFT) | (this.random[this.next++]! & RANDOM_MASK)) >>> 0;
      if (id !== 0 && !taken(id)) return id;
    }
  }
}
