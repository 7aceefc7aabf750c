/**
 * Where operator-facing messages go: the CLI hands in its logger (src/cli/logging.ts: text or JSON
 * lines); the relay server and the metrics endpoint only write to it.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}
