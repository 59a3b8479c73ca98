// A week is named one way on every chart: ISO 8601 number and Monday, in the plant's calendar and the user's
// language, and a week the range cuts says which days were counted.
import { afterEach, describe, expect, it } from "vitest";
import i18n from "./index";
import { usePlant } from "./format";
import { isoWeek, weekLabel } from "./weeks";

const t = i18n.t.bind(i18n);

afterEach(async () => {
  await i18n.changeLanguage("en");
  usePlant.setState({ timeZone: "UTC" });
});

describe("ISO 8601 weeks", () => {
  it("numbers weeks from the one holding the year's first Thursday", () => {
    expect(isoWeek("2026-11-23")).toEqual({ year: 2026, week: 48 });
    expect(isoWeek("2026-11-29")).toEqual({ year: 2026, week: 48 }); // its Sunday
    expect(isoWeek("2026-12-28")).toEqual({ year: 2026, week: 53 });
    expect(isoWeek("2027-01-03")).toEqual({ year: 2026, week: 53 }); // a January Sunday of the last year's week
    expect(isoWeek("2027-01-04")).toEqual({ year: 2027, week: 1 });
    expect(isoWeek("2024-12-30")).toEqual({ year: 2025, week: 1 }); // a December Monday of next year's week 1
    expect(isoWeek("2026-01-01")).toEqual({ year: 2026, week: 1 });
    expect(isoWeek("not a date")).toBeNull();
  });
});

describe("week labels", () => {
  // Monday 2026-11-23 00:00 in Seoul is Sunday 15:00 UTC: read in UTC it would be "Nov 22"
  const W48 = "2026-11-22T15:00:00+00:00";

  it("names a week by its number and its Monday on the plant's calendar", () => {
    usePlant.setState({ timeZone: "Asia/Seoul" });
    expect(weekLabel({ start: W48, partial: false }, t)).toEqual({
      label: "W48 · Nov 23", tooltip: "W48 · Nov 23", partialNote: null });
  });

  it("names the week the same whichever day of it a kernel sent as its start", () => {
    usePlant.setState({ timeZone: "Asia/Seoul" });
    // a kernel before whole weeks gave a cut week the range's first day (Wednesday 25th) on the OEE chart
    expect(weekLabel({ start: "2026-11-24T15:00:00+00:00" }, t).label).toBe("W48 · Nov 23");
  });

  it("marks a week the range cuts and names the days counted", () => {
    usePlant.setState({ timeZone: "Asia/Seoul" });
    const cut = { start: W48, counted_from: "2026-11-24T15:00:00+00:00", counted_to: "2026-11-29T15:00:00+00:00",
                  partial: true };
    expect(weekLabel(cut, t)).toEqual({
      label: "W48 · Nov 23 *",
      tooltip: "W48 · Nov 23 — partial week: only Nov 25 – Nov 29 counted",
      partialNote: "W48: Nov 25 – Nov 29",
    });
    const oneDay = { ...cut, counted_from: "2026-11-28T15:00:00+00:00" };
    expect(weekLabel(oneDay, t).partialNote).toBe("W48: Nov 29");
  });

  it("speaks Korean", async () => {
    usePlant.setState({ timeZone: "Asia/Seoul" });
    await i18n.changeLanguage("ko");
    expect(weekLabel({ start: W48 }, t).label).toBe("48주차 · 11월 23일");
    const cut = { start: W48, counted_from: "2026-11-24T15:00:00+00:00", counted_to: "2026-11-29T15:00:00+00:00",
                  partial: true };
    expect(weekLabel(cut, t)).toEqual({
      label: "48주차 · 11월 23일 *",
      tooltip: "48주차 · 11월 23일 — 일부 주: 11월 25일 ~ 11월 29일만 집계",
      partialNote: "48주차: 11월 25일 ~ 11월 29일",
    });
  });
});
