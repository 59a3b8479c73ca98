// A LOT's or unit's history, newest first, by cursor: the newest page polled, older pages loaded on demand.
import { useCallback, useEffect, useState } from "react";
import { toApiError, type ApiError } from "../api/client";
import { endpoints, HISTORY_PAGE_SIZE, keyOf } from "../api/endpoints";
import type { HistoryEvent, LotHistory, UnitHistory } from "../api/types";
import { usePolling, type PollState } from "./usePolling";

export type HistoryTarget = { kind: "lot"; lotNumber: string } | { kind: "unit"; serialNumber: string };

/** One event's identity across pages: its trace id, or (older kernels) the way it is sent every time. */
const identity = (event: HistoryEvent) =>
  event.id !== undefined ? `#${event.id}` : JSON.stringify([event.type, event.data, event.recorded_at ?? event.at]);

/** When it happened at the station; before issue 13 the kernel only gave the receipt time `at`. */
export const happenedAt = (event: HistoryEvent) => event.recorded_at ?? event.at;

/** Events from several pages, each once, newest first: station time, then the station's sequence number,
 *  then as the kernel ordered them (its cursor order: time, sequence, id). */
export function mergeEvents(...pages: HistoryEvent[][]): HistoryEvent[] {
  const seen = new Set<string>();
  const merged: { event: HistoryEvent; order: number }[] = [];
  for (const event of pages.flat()) {
    const key = identity(event);
    if (seen.has(key)) continue;
    seen.add(key);
    merged.push({ event, order: merged.length });
  }
  return merged
    .sort((a, b) => Date.parse(happenedAt(b.event)) - Date.parse(happenedAt(a.event))
      || (b.event.seq ?? 0) - (a.event.seq ?? 0) || a.order - b.order)
    .map((m) => m.event);
}

export interface HistoryState<T> {
  latest: PollState<T>;
  events: HistoryEvent[];
  /** The true number of events (the kernel's `total`), or what is shown when it does not say. */
  total: number;
  /** Another page is there to load (the kernel gave a cursor). */
  hasOlder: boolean;
  loadingOlder: boolean;
  olderError: ApiError | undefined;
  loadOlder(): void;
}

export function useHistory<T extends LotHistory | UnitHistory>(target: HistoryTarget,
                                                                intervalMs: number): HistoryState<T> {
  const id = target.kind === "lot" ? target.lotNumber : target.serialNumber;
  const path = target.kind === "lot" ? `/lots/${id}/history` : `/units/${id}/history`;
  const fetchPage = useCallback((before: string | null, signal?: AbortSignal) => {
    const query = { limit: HISTORY_PAGE_SIZE, before };
    return (target.kind === "lot" ? endpoints.lotHistory(id, query, signal)
      : endpoints.unitHistory(id, query, signal)) as Promise<T>;
  }, [target.kind, id]);
  const latest = usePolling<T>(keyOf(path, { limit: HISTORY_PAGE_SIZE }),
                               useCallback((signal: AbortSignal) => fetchPage(null, signal), [fetchPage]),
                               intervalMs);
  const [kept, setKept] = useState<HistoryEvent[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [olderError, setOlderError] = useState<ApiError | undefined>(undefined);

  useEffect(() => {
    setKept([]);
    setCursor(undefined);
    setOlderError(undefined);
  }, [path]);

  const current = latest.data; // keyed by URL: the data are this LOT's or unit's
  const firstEvents = current?.events ?? [];
  const next = cursor === undefined ? current?.next_before ?? null : cursor;

  const loadOlder = useCallback(() => {
    if (!next || loadingOlder) return;
    setLoadingOlder(true);
    setOlderError(undefined);
    // What the newest page shows now is kept: new events may push it off that page while older ones load.
    const shown = firstEvents;
    fetchPage(next)
      .then((page) => {
        setKept((before) => mergeEvents(shown, before, page.events));
        setCursor(page.next_before ?? null);
      })
      .catch((error: unknown) => setOlderError(toApiError(error)))
      .finally(() => setLoadingOlder(false));
  }, [next, loadingOlder, firstEvents, fetchPage]);

  const events = mergeEvents(firstEvents, kept);
  return {
    latest,
    events,
    total: Math.max(current?.total ?? events.length, events.length),
    hasOlder: !!next,
    loadingOlder,
    olderError,
    loadOlder,
  };
}
