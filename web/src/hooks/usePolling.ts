// React binding of Poller: data, the last error, consecutive failures and a refresh function.
import { useCallback, useEffect, useRef, useState } from "react";
import { Poller } from "./poller";
import { toApiError, type ApiError } from "../api/client";

export interface PollState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  failures: number;
  /** When the next try after a failure is due (ms from the failure), for "retrying in …". */
  retryInMs: number | undefined;
  updatedAt: number | undefined;
  loading: boolean;
  refresh(): void;
}

/**
 * Poll `fetcher` every `intervalMs` while the component is mounted (and `enabled`); a change of
 * `key` starts over (new filters, another LOT). Failures back off 2, 4, 8 s; data stays on screen.
 */
export function usePolling<T>(
  key: string,
  fetcher: (signal: AbortSignal) => Promise<T>,
  intervalMs: number,
  enabled = true,
): PollState<T> {
  const [state, setState] = useState<Omit<PollState<T>, "refresh">>({
    data: undefined,
    error: undefined,
    failures: 0,
    retryInMs: undefined,
    updatedAt: undefined,
    loading: enabled,
  });
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const pollerRef = useRef<Poller<T> | null>(null);

  useEffect(() => {
    if (!enabled) {
      setState((s) => ({ ...s, loading: false }));
      return undefined;
    }
    setState((s) => ({ ...s, loading: s.data === undefined, error: undefined, failures: 0 }));
    const poller = new Poller<T>((signal) => fetcherRef.current(signal), {
      intervalMs,
      onData: (data) =>
        setState({ data, error: undefined, failures: 0, retryInMs: undefined, updatedAt: Date.now(), loading: false }),
      onError: (error, failures, retryInMs) =>
        setState((s) => ({ ...s, error: toApiError(error), failures, retryInMs, loading: false })),
    });
    pollerRef.current = poller;
    // A hidden tab stops polling (the API allows 100 requests a minute per user) and catches up on return.
    const onVisibility = () => (document.hidden ? poller.stop() : poller.start());
    document.addEventListener("visibilitychange", onVisibility);
    if (!document.hidden) poller.start();
    return () => {
      document.removeEventListener("visibilitychange", onVisibility);
      poller.stop();
      pollerRef.current = null;
    };
  }, [key, intervalMs, enabled]);

  const refresh = useCallback(() => pollerRef.current?.poke(), []);
  return { ...state, refresh };
}
