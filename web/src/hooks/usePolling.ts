// React binding of the shared poll store: data, the last error, consecutive failures and a refresh function.
import { useCallback, useRef, useSyncExternalStore } from "react";
import { pokePoll, pollSnapshot, subscribePoll, type PollSnapshot } from "./pollStore";

export interface PollState<T> extends PollSnapshot<T> {
  refresh(): void;
}

const IDLE: PollSnapshot<never> = {
  data: undefined, error: undefined, failures: 0, retryInMs: undefined, updatedAt: undefined, loading: false,
};
const STARTING: PollSnapshot<never> = { ...IDLE, loading: true };

/**
 * Poll `fetcher` every `intervalMs` while the component is mounted (and `enabled`). `key` names what is
 * fetched — the URL with its query — and every component polling the same key shares one request per
 * interval (the shortest interval asked wins). A change of `key` starts over (new filters, another LOT).
 * Failures back off 2, 4, 8 s; data stays on screen.
 */
export function usePolling<T>(
  key: string,
  fetcher: (signal: AbortSignal) => Promise<T>,
  intervalMs: number,
  enabled = true,
): PollState<T> {
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;

  const subscribe = useCallback((listener: () => void) => {
    if (!enabled) return () => undefined;
    return subscribePoll<T>(key, (signal) => fetcherRef.current(signal), intervalMs, listener);
  }, [key, intervalMs, enabled]);
  const snapshot = useSyncExternalStore(
    subscribe,
    () => (enabled ? pollSnapshot<T>(key) ?? STARTING : IDLE) as PollSnapshot<T>,
  );

  // A new key (new filters, another LOT) keeps the previous data on screen until its own arrive, as a
  // filter change should not blank the table; pages that must not mix them check what the data are for.
  const last = useRef<PollSnapshot<T> | undefined>(undefined);
  if (snapshot.data !== undefined) last.current = snapshot;
  const refresh = useCallback(() => pokePoll(key), [key]);
  if (snapshot.data === undefined && snapshot.loading && last.current && enabled) {
    return { ...snapshot, data: last.current.data, updatedAt: last.current.updatedAt, refresh };
  }
  return { ...snapshot, refresh };
}
