// @vitest-environment node
// The API client against a real HTTP server: bearer tokens, one shared refresh on expiry, errors.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError, createApiClient, panelPath, type TokenSession } from "./client";
import type { TokenPair } from "./types";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";

const pair = (n: number): TokenPair => ({
  access_token: `access-${n}`, refresh_token: `refresh-${n}`, token_type: "bearer", expires_in: 900, role: "admin",
});

function memorySession(initial: TokenPair | null) {
  const state = { tokens: initial, ended: [] as string[], saved: 0 };
  const session: TokenSession = {
    tokens: () => state.tokens,
    save: (t) => {
      state.tokens = t;
      state.saved += 1;
    },
    end: (reason) => {
      state.tokens = null;
      state.ended.push(reason);
    },
  };
  return { state, session };
}

const expired = { status: 401, body: { detail: { code: "TOKEN_EXPIRED", message: "access token expired" } } };

describe("createApiClient", () => {
  let kernel: FakeKernel;
  let issued: number;

  beforeEach(async () => {
    kernel = await startFakeKernel();
    issued = 1;
    // Only the newest access token is good; each refresh token works once (rotation).
    kernel.route("GET", "/api/v1/lots", (req) =>
      req.authorization === `Bearer access-${issued}` ? { body: { items: [], total: 0 } } : expired);
    kernel.route("POST", "/api/v1/auth/refresh", (req) => {
      const body = req.body as { refresh_token: string };
      if (body.refresh_token !== `refresh-${issued}`) {
        return { status: 401, body: { detail: { code: "REFRESH_TOKEN_REUSED", message: "already used" } } };
      }
      issued += 1;
      return { body: pair(issued) };
    });
  });

  afterEach(async () => {
    await kernel.close();
  });

  it("sends the access token as a bearer header", async () => {
    const { session } = memorySession(pair(1));
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    await http.get("/lots");
    expect(kernel.seen[0].authorization).toBe("Bearer access-1");
  });

  it("on TOKEN_EXPIRED refreshes once, keeps the new pair and retries the request", async () => {
    const { state, session } = memorySession(pair(1));
    kernel.route("GET", "/api/v1/lots", (req) =>
      req.authorization === "Bearer access-2" ? { body: { items: [1], total: 1 } } : expired);
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    const res = await http.get("/lots");
    expect(res.data.total).toBe(1);
    expect(state.tokens?.access_token).toBe("access-2");
    expect(kernel.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      "GET /api/v1/lots", "POST /api/v1/auth/refresh", "GET /api/v1/lots",
    ]);
  });

  it("shares one refresh between requests that expire together (a rotated token is single-use)", async () => {
    const { state, session } = memorySession(pair(1));
    // Access tokens stay valid until they expire, even after a rotation; access-1 has expired.
    kernel.route("GET", "/api/v1/lots", (req) =>
      req.authorization !== "Bearer access-1" ? { body: { items: [], total: 0 } } : expired);
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    await Promise.all([http.get("/lots"), http.get("/lots"), http.get("/lots")]);
    expect(kernel.seen.filter((s) => s.path === "/api/v1/auth/refresh")).toHaveLength(1);
    expect(state.ended).toEqual([]);
    expect(state.saved).toBe(1);
  });

  it("ends the session when the refresh is refused, and does not loop", async () => {
    const { state, session } = memorySession({ ...pair(1), refresh_token: "refresh-stale" });
    kernel.route("GET", "/api/v1/lots", () => expired);
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    const error = await http.get("/lots").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe("REFRESH_TOKEN_REUSED");
    expect(state.ended).toEqual(["revoked"]);
    expect(state.tokens).toBeNull();
    expect(kernel.seen).toHaveLength(2);
  });

  it("turns the kernel's error body into an ApiError with code, message and retry_after", async () => {
    kernel.route("POST", "/api/v1/labels/print", () => ({
      status: 503, headers: { "retry-after": "17" },
      body: { detail: { code: "SERVICE_UNAVAILABLE", message: "label_printer circuit open", retry_after: 17 } },
    }));
    const { session } = memorySession(pair(1));
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    const error = (await http.post("/labels/print", {}).catch((e: unknown) => e)) as ApiError;
    expect([error.status, error.code, error.message, error.retryAfter]).toEqual([
      503, "SERVICE_UNAVAILABLE", "label_printer circuit open", 17,
    ]);
  });

  it("reports an unreachable server as NETWORK_ERROR without ending the session", async () => {
    const { state, session } = memorySession(pair(1));
    const { http } = createApiClient(session, `${kernel.url}/api/v1`);
    await kernel.close();
    kernel = await startFakeKernel(); // afterEach closes this one
    const error = (await http.get("/lots").catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe("NETWORK_ERROR");
    expect(state.ended).toEqual([]);
  });
});

describe("panelPath", () => {
  it("accepts /api/v1/… and relative paths, as paths under the API base", () => {
    expect(panelPath("/api/v1/dashboard/kpi/yield")).toBe("/dashboard/kpi/yield");
    expect(panelPath("dashboard/kpi/yield?tz=UTC")).toBe("/dashboard/kpi/yield?tz=UTC");
    expect(panelPath("/labels/stats/today")).toBe("/labels/stats/today");
  });

  it("refuses endpoints on another origin", () => {
    expect(() => panelPath("https://evil.example/steal")).toThrow(ApiError);
    expect(() => panelPath("//evil.example/steal")).toThrow(ApiError);
  });
});

describe("two browser tabs sharing one login", () => {
  let kernel: FakeKernel;

  beforeEach(async () => {
    kernel = await startFakeKernel();
    let issued = 1;
    kernel.route("GET", "/api/v1/lots", (req) =>
      req.authorization !== "Bearer access-1" ? { body: { items: [], total: 0 } } : expired);
    kernel.route("POST", "/api/v1/auth/refresh", (req) => {
      if ((req.body as { refresh_token: string }).refresh_token !== `refresh-${issued}`) {
        return { status: 401, body: { detail: { code: "REFRESH_TOKEN_REUSED", message: "already used" } } };
      }
      issued += 1;
      return { body: pair(issued) };
    });
  });

  afterEach(async () => {
    await kernel.close();
  });

  it("rotates the shared refresh token once: the second tab takes the pair the first one stored", async () => {
    let shared: TokenPair | null = pair(1); // what local storage holds
    let queue = Promise.resolve();
    const lock = <T,>(work: () => Promise<T>): Promise<T> => {
      const run = queue.then(work);
      queue = run.then(() => undefined, () => undefined);
      return run;
    };
    function tab() {
      const mine = { tokens: pair(1) as TokenPair | null, ended: [] as string[] };
      const session: TokenSession = {
        tokens: () => mine.tokens,
        save: (t) => {
          mine.tokens = t;
          shared = t;
        },
        end: (reason) => mine.ended.push(reason),
        latest: () => {
          mine.tokens = shared;
          return shared;
        },
        exclusive: lock,
      };
      return { mine, client: createApiClient(session, `${kernel.url}/api/v1`) };
    }
    const [a, b] = [tab(), tab()];
    await Promise.all([a.client.http.get("/lots"), b.client.http.get("/lots")]);
    expect(kernel.seen.filter((s) => s.path === "/api/v1/auth/refresh")).toHaveLength(1);
    expect([a.mine.ended, b.mine.ended]).toEqual([[], []]);
    expect(a.mine.tokens?.access_token).toBe("access-2");
    expect(b.mine.tokens?.access_token).toBe("access-2");
  });
});
