// The polling loop's schedule: interval on success, 2/4/8 s backoff on failure, Retry-After, stop.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/client";
import { BACKOFF_MS, Poller, backoffDelay } from "./poller";

/** A fetcher whose answers are scripted: "ok" resolves, anything else rejects with that error. */
function scripted(outcomes: (string | Error)[]) {
  const calls: number[] = [];
  const fetcher = vi.fn(async () => {
    calls.push(Date.now());
    const next = outcomes.shift() ?? "ok";
    if (next instanceof Error) throw next;
    return next;
  });
  return { fetcher, calls };
}

async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms);
}

describe("Poller", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fetches at once, then every interval while it succeeds", async () => {
    const { fetcher, calls } = scripted([]);
    const onData = vi.fn();
    const poller = new Poller(fetcher, { intervalMs: 10_000, onData, onError: vi.fn() });
    poller.start();
    await advance(0);
    expect(calls).toEqual([0]);
    await advance(9_999);
    expect(calls).toHaveLength(1);
    await advance(1);
    await advance(20_000);
    expect(calls).toEqual([0, 10_000, 20_000, 30_000]);
    expect(onData).toHaveBeenCalledTimes(4);
    poller.stop();
  });

  it("backs off 2, 4, 8 s after consecutive failures, keeps 8 s, and returns to the interval on success", async () => {
    const down = new Error("down");
    const { fetcher, calls } = scripted([down, down, down, down, "ok", "ok"]);
    const onError = vi.fn();
    const poller = new Poller(fetcher, { intervalMs: 10_000, onData: vi.fn(), onError });
    poller.start();
    await advance(60_000);
    poller.stop();
    // 0 fail → +2 s fail → +4 s fail → +8 s fail → +8 s ok → +10 s ok …
    expect(calls.slice(0, 7)).toEqual([0, 2_000, 6_000, 14_000, 22_000, 32_000, 42_000]);
    expect(onError.mock.calls.map(([, failures, retryIn]) => [failures, retryIn])).toEqual([
      [1, 2_000], [2, 4_000], [3, 8_000], [4, 8_000],
    ]);
    expect(poller.failures).toBe(0);
  });

  it("waits as long as the server's Retry-After when that is longer than the backoff step", async () => {
    const breakerOpen = new ApiError("printer breaker open", 503, "SERVICE_UNAVAILABLE", {}, 30);
    const { fetcher, calls } = scripted([breakerOpen]);
    const poller = new Poller(fetcher, { intervalMs: 10_000, onData: vi.fn(), onError: vi.fn() });
    poller.start();
    await advance(29_999);
    expect(calls).toEqual([0]);
    await advance(1);
    expect(calls).toEqual([0, 30_000]);
    poller.stop();
  });

  it("stops fetching after stop, and a late answer is dropped", async () => {
    let release: (v: string) => void = () => undefined;
    const fetcher = vi.fn(() => new Promise<string>((resolve) => { release = resolve; }));
    const onData = vi.fn();
    const poller = new Poller(fetcher, { intervalMs: 1_000, onData, onError: vi.fn() });
    poller.start();
    poller.stop();
    release("late");
    await advance(10_000);
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(onData).not.toHaveBeenCalled();
  });

  it("poke fetches now and restarts the schedule", async () => {
    const { fetcher, calls } = scripted([]);
    const poller = new Poller(fetcher, { intervalMs: 10_000, onData: vi.fn(), onError: vi.fn() });
    poller.start();
    await advance(3_000);
    poller.poke();
    await advance(0);
    await advance(10_000);
    expect(calls).toEqual([0, 3_000, 13_000]);
    poller.stop();
  });

  it("aborts the request in flight when stopped", async () => {
    let seen: AbortSignal | undefined;
    const poller = new Poller((signal) => {
      seen = signal;
      return new Promise<string>(() => undefined);
    }, { intervalMs: 1_000, onData: vi.fn(), onError: vi.fn() });
    poller.start();
    expect(seen?.aborted).toBe(false);
    poller.stop();
    expect(seen?.aborted).toBe(true);
  });
});

describe("backoffDelay", () => {
  it("follows the seed's steps and caps at the last one", () => {
    expect([1, 2, 3, 4, 10].map((n) => backoffDelay(n, new Error("x")))).toEqual([2000, 4000, 8000, 8000, 8000]);
    expect(BACKOFF_MS).toEqual([2000, 4000, 8000]);
  });

  it("does not hammer an endpoint that refuses for good (403, 404)", () => {
    expect(backoffDelay(1, new ApiError("no", 403, "FORBIDDEN"))).toBe(60_000);
    expect(backoffDelay(1, new ApiError("gone", 404, "NOT_FOUND"), BACKOFF_MS, 120_000)).toBe(120_000);
    expect(backoffDelay(1, new ApiError("down", 503, "SERVICE_UNAVAILABLE"))).toBe(2_000);
    expect(backoffDelay(1, new ApiError("expired", 401, "TOKEN_EXPIRED"))).toBe(2_000);
  });

  it("honours a rate limit's retry_after", () => {
    expect(backoffDelay(1, new ApiError("slow down", 429, "RATE_LIMITED", {}, 12))).toBe(12_000);
    expect(backoffDelay(3, new ApiError("slow down", 429, "RATE_LIMITED", {}, 1))).toBe(8_000);
  });
});
