// One poller per URL, shared by every panel and page that shows it: one request per endpoint per interval.
import { Poller } from "./poller";
import { toApiError, type ApiError } from "../api/client";

export interface PollSnapshot<T> {
  data: T | undefined;
  error: ApiError | undefined;
  failures: number;
  /** When the next try after a failure is due (ms from the failure), for "retrying in …". */
  retryInMs: number | undefined;
  updatedAt: number | undefined;
  loading: boolean;
}

interface Subscriber {
  intervalMs: number;
  listener: () => void;
}

interface Entry<T> {
  poller: Poller<T>;
  fetcher: (signal: AbortSignal) => Promise<T>;
  snapshot: PollSnapshot<T>;
  subscribers: Set<Subscriber>;
}

const entries = new Map<string, Entry<unknown>>();
let watchingVisibility = false;

function onVisibility() {
  for (const entry of entries.values()) {
    if (document.hidden) entry.poller.stop();
    else entry.poller.start();
  }
}

function update<T>(entry: Entry<T>, patch: Partial<PollSnapshot<T>>) {
  entry.snapshot = { ...entry.snapshot, ...patch };
  for (const s of entry.subscribers) s.listener();
}

/** The shortest interval any subscriber asked for: the panel that wants it freshest sets the pace. */
function pace(entry: Entry<unknown>): number {
  return Math.min(...[...entry.subscribers].map((s) => s.intervalMs));
}

/**
 * Subscribe to `key` (the URL with its query: two views of one URL share it). The first subscriber
 * starts the poller with its `fetcher`; later ones get the data already there. The last to leave stops it.
 */
export function subscribePoll<T>(key: string, fetcher: (signal: AbortSignal) => Promise<T>, intervalMs: number,
                                 listener: () => void): () => void {
  let entry = entries.get(key) as Entry<T> | undefined;
  const subscriber: Subscriber = { intervalMs, listener };
  if (!entry) {
    const created: Entry<T> = {
      fetcher,
      subscribers: new Set(),
      snapshot: { data: undefined, error: undefined, failures: 0, retryInMs: undefined, updatedAt: undefined,
                  loading: true },
      poller: undefined as unknown as Poller<T>,
    };
    created.poller = new Poller<T>((signal) => created.fetcher(signal), {
      intervalMs,
      onData: (data) => update(created, { data, error: undefined, failures: 0, retryInMs: undefined,
                                          updatedAt: Date.now(), loading: false }),
      onError: (error, failures, retryInMs) =>
        update(created, { error: toApiError(error), failures, retryInMs, loading: false }),
    });
    entry = created;
    entries.set(key, entry as Entry<unknown>);
  }
  entry.fetcher = fetcher;
  entry.subscribers.add(subscriber);
  entry.poller.setInterval(pace(entry as Entry<unknown>));
  if (!watchingVisibility && typeof document !== "undefined") {
    document.addEventListener("visibilitychange", onVisibility);
    watchingVisibility = true;
  }
  if (typeof document === "undefined" || !document.hidden) entry.poller.start();
  const current = entry;
  return () => {
    current.subscribers.delete(subscriber);
    if (current.subscribers.size > 0) {
      current.poller.setInterval(pace(current as Entry<unknown>));
      return;
    }
    current.poller.stop();
    if (entries.get(key) === current) entries.delete(key);
  };
}

export function pollSnapshot<T>(key: string): PollSnapshot<T> | undefined {
  return entries.get(key)?.snapshot as PollSnapshot<T> | undefined;
}

/** Fetch `key` now for everyone showing it (a write changed the data, or a user pressed refresh). */
export function pokePoll(key: string): void {
  entries.get(key)?.poller.poke();
}

/** How many URLs are being polled right now (for tests and diagnostics). */
export function polledKeys(): string[] {
  return [...entries.keys()];
}
