/** What the configuration tests share: a command line resolved as the CLI does, and the one line a refused one gets. */
import { parseArgv } from "../../src/cli/argv.ts";
import { ConfigError, resolveConfig, type RelayConfig } from "../../src/config/resolve.ts";

export const resolve = (argv: string[]): RelayConfig => resolveConfig(parseArgv(argv).raw);

/** The ConfigError's message for `argv`; throws when it resolves, or fails otherwise. */
export function refusal(argv: string[]): string {
  try {
    resolve(argv);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error(`expected a ConfigError for ${argv.join(" ")}`);
}
