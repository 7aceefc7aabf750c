/**
 * The operator's control channel (`bunturn admin sessions`, `bunturn admin kill`): HTTP over a Unix socket
 * (--control-socket PATH), created 0600 so that only the relay's own user (and root) can connect. Why not
 * the Prometheus server: it listens on the network (0.0.0.0 by default) without authentication, fine for
 * counters but not for listing who talks to whom or ending sessions; a Unix socket is local by
 * construction and its file permissions are the access control. (coturn's equivalent is a telnet CLI on
 * a TCP port with a password.)
 *
 *   GET    /sessions        every live allocation (JSON array)
 *   DELETE /sessions/ID     ends one: 200, or 404 when there is no such session
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import type { Server } from "bun";
import type { Session } from "../engine/admin-channel.ts";

export interface ControlSource {
  sessions(): Promise<Session[]>;
  endSession(id: string): Promise<boolean>;
}

export class ControlSocket {
  private constructor(private readonly server: Server<undefined>, readonly path: string) {}

  /** Listens at `path` (a stale socket there is replaced; any other file is an error). */
  static start(path: string, source: ControlSource): ControlSocket {
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw new Error(`--control-socket ${path}: exists and is not a socket`);
      unlinkSync(path);
    }
    const server = Bun.serve({
      unix: path,
      fetch: (request) => answer(request, source),
    });
    chmodSync(path, 0o600);
    return new ControlSocket(server, path);
  }

  stop(): void {
    this.server.stop(true);
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

async function answer(request: Request, source: ControlSource): Promise<Response> {
  const path = new URL(request.url).pathname;
  try {
    if (path === "/sessions" && request.method === "GET") return Response.json(await source.sessions());
    const kill = /^\/sessions\/([0-9]+-[0-9]+)$/.exec(path);
    if (kill && request.method === "DELETE") {
      return (await source.endSession(kill[1]!)) ? Response.json({ ended: kill[1] }) : Response.json({ error: `no session ${kill[1]}` }, { status: 404 });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  } catch (error) {
    return Response.json({ error: (error as Error).message }, { status: 503 });
  }
}
