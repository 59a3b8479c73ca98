// One way to name a week on every chart: its ISO 8601 number and its Monday ("W48 · Nov 23"), in the plant's
// calendar, saying when the chosen range covers only part of it.
import type { TFunction } from "i18next";
import type { PeriodBounds } from "../api/types";
import { formatMonthDay, plantDate } from "./format";

export interface WeekLabel {
  /** The week's ISO number and Monday, marked with " *" when partial: the chart's axis. */
  label: string;
  /** The label, and for a partial week the days counted: the chart's tooltip. */
  tooltip: string;
  /** "W48: Nov 25 – Nov 29" for a partial week, for the note under the charts; null when whole. */
  partialNote: string | null;
}

const DAY_MS = 86_400_000;

/** The ISO 8601 week of a calendar day (YYYY-MM-DD): weeks start on Monday, and week 1 holds the year's first
 *  Thursday (so 2026-12-28 is 2026-W53 and 2024-12-30 is 2025-W01). */
export function isoWeek(date: string): { year: number; week: number } | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) return null;
  const day = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  const weekday = (new Date(day).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(day + (3 - weekday) * DAY_MS);
  const year = thursday.getUTCFullYear();
  return { year, week: Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1 };
}

/** The Monday of a calendar day's week (YYYY-MM-DD). */
function mondayOf(date: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) return date;
  const day = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return new Date(day - ((new Date(day).getUTCDay() + 6) % 7) * DAY_MS).toISOString().slice(0, 10);
}

/** The last plant-calendar day before the instant `end` (an exclusive end: a midnight names the day before). */
function lastDay(end: string): string {
  return plantDate(new Date(new Date(end).getTime() - 1));
}

/** A week of the executive charts, named the same way on each (the OEE and the output chart): `start` is its
 *  Monday 00:00 on the plant's clock, as both endpoints answer; a week the range cuts (`partial`) says which days
 *  were counted. */
export function weekLabel(bucket: PeriodBounds, t: TFunction): WeekLabel {
  const monday = mondayOf(plantDate(new Date(bucket.start))); // a kernel before whole weeks sent a cut week's first day
  const week = isoWeek(monday);
  const name = t("executive.week", { week: week?.week ?? "?", monday: formatMonthDay(monday) });
  if (!bucket.partial || !bucket.counted_from || !bucket.counted_to) return { label: name, tooltip: name, partialNote: null };
  const first = plantDate(new Date(bucket.counted_from));
  const last = lastDay(bucket.counted_to);
  const days = first === last ? formatMonthDay(first)
    : t("executive.days", { from: formatMonthDay(first), to: formatMonthDay(last) });
  return {
    label: `${name} *`,
    tooltip: t("executive.partialWeekTooltip", { week: name, days }),
    partialNote: t("executive.partialWeekDays", { week: t("executive.weekNumber", { week: week?.week ?? "?" }), days }),
  };
}
