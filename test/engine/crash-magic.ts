/** The datagram that makes test/engine/crashing-worker.ts throw. */
export const MAGIC = "crash-me-please";
