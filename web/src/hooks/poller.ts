// A polling loop: fetch every `intervalMs`; after a failure retry with backoff (2, 4, 8 s, then 8 s).

import { ApiError } from "../api/client";

/** The seed's backoff after consecutive failures; the last step repeats. */
export const BACKOFF_MS = [2000, 4000, 8000] as const;

export interface PollerOptions<T> {
  intervalMs: number;
  backoffMs?: readonly number[];
  onData(data: T): void;
  onError(error: unknown, failures: number, retryInMs: number): void;
}

/** A refusal that retrying soon will not change (no permission, no such endpoint, bad request). */
export const SETTLED_RETRY_MS = 60_000;

function isSettled(error: unknown): boolean {
  return error instanceof ApiError && error.status >= 400 && error.status < 500 &&
    error.status !== 408 && error.status !== 429 && error.status !== 401;
}

/**
 * How long to wait before the next try after `failures` consecutive failures (1-based): the seed's
 * 2, 4, 8 s for outages; for a 4xx refusal (403, 404 …) no sooner than the interval or a minute.
 */
export function backoffDelay(failures: number, error: unknown, steps: readonly number[] = BACKOFF_MS,
                             intervalMs = 0): number {
  if (isSettled(error)) return Math.max(intervalMs, SETTLED_RETRY_MS);
  const step = steps[Math.min(Math.max(failures, 1), steps.length) - 1];
  // An open breaker or the rate limit says when to come back; never come back sooner.
  const asked = error instanceof ApiError && error.retryAfter ? error.retryAfter * 1000 : 0;
  return Math.max(step, asked);
}

export class Poller<T> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private busy = false;
  private generation = 0;
  failures = 0;

  constructor(
    private readonly fetcher: (signal: AbortSignal) => Promise<T>,
    private readonly options: PollerOptions<T>,
  ) {}

  /** Fetch now, then keep polling until `stop`. */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  stop(): void {
    this.running = false;
    this.generation += 1;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  /** Poll at another pace from the next wait on (subscribers of a shared poller come and go). */
  setInterval(intervalMs: number): void {
    this.options.intervalMs = intervalMs;
  }

  /** Fetch now (a user pressed refresh, or a write changed the data) and restart the schedule. */
  poke(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    if (!this.busy) void this.tick();
  }

  private controller: AbortController | undefined;

  private async tick(): Promise<void> {
    const generation = this.generation;
    this.busy = true;
    this.controller = new AbortController();
    let delay: number;
    try {
      const data = await this.fetcher(this.controller.signal);
      if (generation !== this.generation) return;
      this.failures = 0;
      delay = this.options.intervalMs;
      this.options.onData(data);
    } catch (error) {
      if (generation !== this.generation) return;
      this.failures += 1;
      delay = backoffDelay(this.failures, error, this.options.backoffMs, this.options.intervalMs);
      this.options.onError(error, this.failures, delay);
    } finally {
      if (generation === this.generation) this.busy = false;
    }
    if (this.running && generation === this.generation) {
      this.timer = setTimeout(() => void this.tick(), delay);
    }
  }
}
