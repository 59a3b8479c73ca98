// A small HTTP server on 127.0.0.1 that answers like the kernel, for tests of the client and pages.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  body: unknown;
}

/** An answer: `body` is sent as JSON, `raw` as it is (a PNG, a text) with its own content type. */
export type Handler = (req: Seen) => {
  status?: number; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string>;
} | undefined;

export interface FakeKernel {
  url: string;
  seen: Seen[];
  route(method: string, path: string, handler: Handler): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    let raw = "";
    req.on("data", (chunk) => (raw += chunk));
    req.on("end", () => {
      try {
        resolve(raw ? JSON.parse(raw) : undefined);
      } catch {
        resolve(raw);
      }
    });
  });
}

/** Unrouted requests answer 404 `{"detail": {"code": "NOT_FOUND"}}` like the kernel. */
export async function startFakeKernel(): Promise<FakeKernel> {
  const routes = new Map<string, Handler>();
  const seen: Seen[] = [];
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const entry: Seen = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
      body: await readBody(req),
    };
    seen.push(entry);
    const handler = routes.get(`${entry.method} ${entry.path}`);
    const answer = handler?.(entry) ?? {
      status: 404, body: { detail: { code: "NOT_FOUND", message: `${entry.path} not found` } },
    };
    res.writeHead(answer.status ?? 200, { "content-type": "application/json", ...answer.headers });
    if (answer.raw !== undefined) res.end(answer.raw);
    else res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    route: (method, path, handler) => routes.set(`${method} ${path}`, handler),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
