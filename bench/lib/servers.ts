/**
 * The servers under test, started the same way: bunturn (`bun src/cli/main.ts`) and coturn's
 * `turnserver` by hand in the foreground of a child process (never the system service), both on
 * 127.0.0.1 with the same user, realm, relay range, relay threads and loopback peers allowed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, freePort, isUdpFree, relayRange, spawn, waitFor, type Spawned } from "./proc.ts";

export const USER = "bench";
export const PASSWORD = "bench-password";
export const REALM = "bench.test";

export interface ServerOptions {
  kind: "bunturn" | "coturn";
  threads: number;
  /**
   * bunturn: --udp-recvmmsg. coturn 4.6.1 (Debian) has no such flag: it reads one datagram per call;
   * coturn 4.17.1 has it on by default (listener, and --multiplex-peer's relay sockets).
   */
  recvmmsg?: boolean;
  /** bunturn: --udp-sendmmsg (default on) or --no-udp-sendmmsg. */
  sendmmsg?: boolean;
  minPort?: number;
  maxPort?: number;
  extra?: string[];
  /** coturn: the turnserver binary (default: `turnserver` on PATH, Debian's 4.6.1 here). */
  coturnBin?: string;
  /** bunturn: the checkout to run (default: this one), e.g. a git worktree of another commit for an A/B of builds. */
  root?: string;
  /** TURN over DTLS on the listening port with this certificate (bunturn and coturn 4.17: --dtls; coturn 4.6: on with a certificate). */
  dtls?: { cert: string; key: string };
  /** TURN over TLS on a port of its own, with this certificate and key (both servers); absent: no TLS. */
  tls?: { cert: string; key: string };
}

export interface Server extends Spawned {
  kind: "bunturn" | "coturn";
  port: number;
  /** The TLS port when started with `tls`. */
  tlsPort?: number;
  threads: number;
  /** The command line, for the log. */
  command: string[];
}

export function coturnVersion(bin = "turnserver"): string {
  const r = Bun.spawnSync([bin, "--version"], { stdout: "pipe", stderr: "pipe" });
  return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "?";
}

/** coturn 4.6 serves DTLS whenever it has a certificate (--no-dtls stops it); 4.17 only with --dtls. */
function coturnDtls(o: ServerOptions): string[] {
  if (!o.dtls) return ["--no-dtls"];
  const old = /^4\.[0-6]\./.test(coturnVersion(o.coturnBin));
  return [...(old ? [] : ["--dtls"]), "--cert", o.dtls.cert, "--pkey", o.dtls.key, "--tls-listening-port", String(freePort())];
}

/** Each kind's relay range when the bench names none: its own, out of the ephemeral range (test/ports.ts). */
const defaultRanges = new Map<ServerOptions["kind"], [number, number]>();

export async function startServer(o: ServerOptions): Promise<Server> {
  const port = freePort();
  const tlsPort = o.tls ? freePort() : undefined;
  const tlsArgs = o.tls ? ["--cert", o.tls.cert, "--pkey", o.tls.key, "--tls-listening-port", String(tlsPort)] : [];
  if (o.minPort === undefined && !defaultRanges.has(o.kind)) defaultRanges.set(o.kind, relayRange(3900));
  const minPort = o.minPort ?? defaultRanges.get(o.kind)![0];
  const maxPort = o.maxPort ?? (o.minPort === undefined ? defaultRanges.get(o.kind)![1] : o.minPort + 3899);
  let command: string[];
  let cleanup = () => {};
  if (o.kind === "bunturn") {
    command = [
      "bun", join(o.root ?? ROOT, "src/cli/main.ts"),
      "--listening-ip", "127.0.0.1", "--listening-port", String(port), "--relay-ip", "127.0.0.1",
      "--min-port", String(minPort), "--max-port", String(maxPort), "--realm", REALM,
      "--lt-cred-mech", "--user", `${USER}:${PASSWORD}`, "--allow-loopback-peers",
      "--relay-threads", String(o.threads),
      ...(o.recvmmsg ? ["--udp-recvmmsg"] : []),
      ...(o.sendmmsg === false ? ["--no-udp-sendmmsg"] : []),
      ...tlsArgs,
      ...(o.dtls ? ["--dtls", "--cert", o.dtls.cert, "--pkey", o.dtls.key, "--no-tls", "--tls-listening-port", String(freePort())] : []),
      ...(o.extra ?? []),
    ];
  } else {
    if (o.recvmmsg) throw new Error("coturn 4.6.1 has no --udp-recvmmsg");
    const dir = mkdtempSync(join(tmpdir(), "bunturn-bench-coturn-"));
    cleanup = () => rmSync(dir, { recursive: true, force: true });
    command = [
      o.coturnBin ?? "turnserver", "-n", "--no-cli", "--log-file=stdout", "--simple-log", ...(o.tls ? tlsArgs : ["--no-tls"]), ...coturnDtls(o),
      "--userdb", join(dir, "turndb"), "--pidfile", join(dir, "turnserver.pid"),
      "-L", "127.0.0.1", "-p", String(port), "--relay-ip", "127.0.0.1",
      "--min-port", String(minPort), "--max-port", String(maxPort), "--realm", REALM,
      "--lt-cred-mech", "--user", `${USER}:${PASSWORD}`, "--allow-loopback-peers",
      "--relay-threads", String(o.threads),
      ...(o.extra ?? []),
    ];
  }
  const s = spawn(command);
  const ready = o.kind === "bunturn" ? () => /listening on/.test(s.output()) : () => !isUdpFree("127.0.0.1", port);
  await waitFor(s, o.kind, ready);
  if (o.kind === "coturn") await Bun.sleep(300); // its relay threads come up after the listener binds
  const stop = s.stop;
  return {
    ...s,
    kind: o.kind,
    port,
    ...(tlsPort !== undefined ? { tlsPort } : {}),
    threads: o.threads,
    command,
    stop: async (t?: number) => {
      const code = await stop(t);
      cleanup();
      return code;
    },
  };
}
