/** The logging options, resolved: where lines go (file, stdout, syslog) and in which format. */
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { get } from "./raw-options.ts";
import type { LogConfig } from "./relay-config.ts";

/** coturn's --syslog-facility names (syslog.h numbers). */
const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** coturn's logging options: --log-file FILE|stdout|-, --no-stdout-log, --simple-log (no-op); plus --log-format. */
export function resolveLog(raw: RawOptions): LogConfig {
  const format = get<string>(raw, "log-format");
  if (format !== "text" && format !== "json") throw new ConfigError(`--log-format: expected text or json, got '${format}'`);
  const file = get<string | undefined>(raw, "log-file");
  if (file !== undefined && file.trim() === "") throw new ConfigError("--log-file needs a file name");
  let syslog: LogConfig["syslog"];
  if (get<boolean>(raw, "syslog") === true || file === "syslog") {
    const name = get<string>(raw, "syslog-facility").toLowerCase().replace(/^log_/, "");
    const facility = FACILITIES[name];
    if (facility === undefined) throw new ConfigError(`--syslog-facility: unknown facility '${name}' (user, daemon, local0 ... local7)`);
    const socket = get<string>(raw, "syslog-socket");
    if (socket.trim() === "") throw new ConfigError("--syslog-socket needs a path");
    syslog = { socket, facility };
  }
  const toFile = file !== undefined && file !== "stdout" && file !== "-" && file !== "syslog";
  // --no-stdout-log means something only when the lines go somewhere else.
  const stdout = !(get<boolean>(raw, "no-stdout-log") === true && (toFile || syslog !== undefined));
  const base: LogConfig = syslog ? { stdout, format, syslog } : { stdout, format };
  return toFile ? { ...base, file } : base;
}
