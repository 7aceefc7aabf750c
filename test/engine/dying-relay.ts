/** bunturn's real command line, with engines that die on a magic datagram (test/engine/dying-worker.ts). */
import { startRelay } from "../../src/cli/main.ts";

await startRelay(process.argv.slice(2), { engineEntry: new URL("./dying-worker.ts", import.meta.url).href });
