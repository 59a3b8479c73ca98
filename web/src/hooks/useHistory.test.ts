// Merging history pages: each event once, in the kernel's order (station time, then station sequence).
import { describe, expect, it } from "vitest";
import type { HistoryEvent } from "../api/types";
import { mergeEvents } from "./useHistory";

const ev = (id: number, at: string, seq: number | null): HistoryEvent => ({
  id, at, recorded_at: at, received_at: at, type: "process_record", seq, station: "ST-01", lot_number: "LOT-1",
  serial_number: null, data: {},
});

describe("mergeEvents", () => {
  it("keeps a replayed batch in station order and shows an event seen on two pages once", () => {
    const t = "2026-11-26T05:00:00Z";
    // The newest page polled again after a replay added seq 102 between events already shown.
    const newest = [ev(9, "2026-11-26T05:01:00Z", 7), ev(4, t, 103), ev(8, t, 102)];
    const older = [ev(8, t, 102), ev(3, t, 101)];
    expect(mergeEvents(older, newest).map((e) => e.id)).toEqual([9, 4, 8, 3]);
  });
});
