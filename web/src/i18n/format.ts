// One way to write numbers, percentages, durations and times: for the user's language, in the plant's time zone.
import { create } from "zustand";
import i18n from "./index";

interface PlantState {
  /** The plant's IANA time zone (the kernel's `timezone` setting, from `/dashboard/summary`). */
  timeZone: string;
}

export const usePlant = create<PlantState>()(() => ({
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
}));

/** Use the plant's time zone for every date shown; an unknown zone is ignored (the browser's stays). */
export function setPlantTimeZone(timeZone: string | null | undefined): void {
  if (!timeZone || timeZone === usePlant.getState().timeZone) return;
  try {
    new Intl.DateTimeFormat("en", { timeZone });
  } catch {
    return;
  }
  usePlant.setState({ timeZone });
}

const locale = () => (i18n.language === "ko" ? "ko-KR" : "en-US");
const zone = () => usePlant.getState().timeZone;

const cache = new Map<string, Intl.NumberFormat | Intl.DateTimeFormat>();
function numberFormat(options: Intl.NumberFormatOptions): Intl.NumberFormat {
  const key = `n|${locale()}|${JSON.stringify(options)}`;
  if (!cache.has(key)) cache.set(key, new Intl.NumberFormat(locale(), options));
  return cache.get(key) as Intl.NumberFormat;
}
function dateFormat(options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `d|${locale()}|${zone()}|${JSON.stringify(options)}`;
  if (!cache.has(key)) cache.set(key, new Intl.DateTimeFormat(locale(), { ...options, timeZone: zone() }));
  return cache.get(key) as Intl.DateTimeFormat;
}

const EMPTY = "—";

/** A count or measure: grouping for the locale, at most 2 decimals. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return EMPTY;
  return numberFormat({ maximumFractionDigits: 2 }).format(value);
}

/** A count of units, whole: a plan pro-rated over part of a shift (584.59) is shown as 585. */
export function formatUnits(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return EMPTY;
  return numberFormat({ maximumFractionDigits: 0 }).format(value);
}

/** A 0–1 ratio as a percentage with one decimal ("87.5%"); null (nothing to divide) is "—". */
export function formatPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return EMPTY;
  return numberFormat({ style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(ratio);
}

/** A percentage already scaled to 0–100 (the Pareto's `percent`). */
export function formatPercentPoints(points: number | null | undefined): string {
  return points === null || points === undefined ? EMPTY : formatPercent(points / 100);
}

function toDate(at: string | number | Date | null | undefined): Date | null {
  if (at === null || at === undefined || at === "") return null;
  const date = at instanceof Date ? at : new Date(at);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Date and time in the plant's zone ("2026. 11. 30. 오후 2:05:09" / "11/30/2026, 2:05:09 PM"). */
export function formatDateTime(at: string | number | Date | null | undefined): string {
  const date = toDate(at);
  return date ? dateFormat({ dateStyle: "short", timeStyle: "medium" }).format(date) : at ? String(at) : EMPTY;
}

export function formatDate(at: string | number | Date | null | undefined): string {
  const date = toDate(at);
  return date ? dateFormat({ dateStyle: "medium" }).format(date) : EMPTY;
}

export function formatTime(at: string | number | Date | null | undefined): string {
  const date = toDate(at);
  return date ? dateFormat({ hour: "2-digit", minute: "2-digit" }).format(date) : EMPTY;
}

function unit(value: number, name: "second" | "minute" | "hour" | "day"): string {
  return numberFormat({ style: "unit", unit: name, unitDisplay: "short" }).format(value);
}

/** A short duration in milliseconds ("12 ms"). */
export function formatMilliseconds(ms: number): string {
  return numberFormat({ style: "unit", unit: "millisecond", unitDisplay: "short", maximumFractionDigits: 1 }).format(ms);
}

/** A time limit or age in seconds: under a minute with up to one decimal ("2.5 sec", "0.05 sec"), longer as
 *  `formatDuration`. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return EMPTY;
  if (seconds >= 60) return formatDuration(seconds);
  return numberFormat({ style: "unit", unit: "second", unitDisplay: "short", maximumFractionDigits: 2 }).format(seconds);
}

/** A duration in the largest two units ("42 sec", "5 min", "3 hr 10 min", "2 days 4 hr"; "3시간 10분"). */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return unit(s, "second");
  if (s < 3600) return unit(Math.floor(s / 60), "minute");
  if (s < 86400) return `${unit(Math.floor(s / 3600), "hour")} ${unit(Math.floor((s % 3600) / 60), "minute")}`;
  return `${unit(Math.floor(s / 86400), "day")} ${unit(Math.floor((s % 86400) / 3600), "hour")}`;
}

/** Calendar months as the kernel names them (`YYYY-MM`, UTC: archived months) in words, listed for the locale
 *  ("January 2026 and February 2026" / "2026년 1월 및 2026년 2월"); a label it cannot read, as it is. */
export function formatMonths(labels: string[]): string {
  const month = new Intl.DateTimeFormat(locale(), { year: "numeric", month: "long", timeZone: "UTC" });
  const words = labels.map((label) => {
    const m = /^(\d{4})-(\d{2})$/.exec(label);
    return m ? month.format(new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1))) : label;
  });
  return new Intl.ListFormat(locale(), { style: "long", type: "conjunction" }).format(words);
}

/** The plant-zone calendar date (YYYY-MM-DD) of an instant, for date inputs and range defaults. */
export function plantDate(at: Date): string {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone(), year: "numeric", month: "2-digit",
                                                   day: "2-digit" }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** Minutes the plant's zone is ahead of UTC at the instant `at`. */
function zoneOffsetMinutes(at: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "numeric",
                                                   day: "numeric", hour: "numeric", minute: "numeric",
                                                   second: "numeric" }).formatToParts(new Date(at));
  const n = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(n("year"), n("month") - 1, n("day"), n("hour"), n("minute"), n("second"));
  return Math.round((wall - Math.floor(at / 1000) * 1000) / 60000);
}

/**
 * Midnight at the start of the plant-calendar date `date` (YYYY-MM-DD, plus `days`) as ISO-8601 with
 * the plant's offset ("2026-11-01T00:00:00+09:00"), the form the KPI endpoints take.
 */
export function plantMidnight(date: string, days = 0, timeZone: string = zone()): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) return "";
  const wall = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + days);
  let offset = zoneOffsetMinutes(wall, timeZone);
  offset = zoneOffsetMinutes(wall - offset * 60000, timeZone); // across a DST change, the second guess holds
  const day = new Date(wall).toISOString().slice(0, 10);
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return `${day}T00:00:00${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** A plant-calendar day (YYYY-MM-DD) as month and day in the user's language ("Nov 23", "11월 23일"). The date is
 *  a calendar day already, so it is read in UTC: no zone can move it to the day before. */
export function formatMonthDay(date: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) return EMPTY;
  return new Intl.DateTimeFormat(locale(), { month: "short", day: "numeric", timeZone: "UTC" })
    .format(new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))));
}

/** A weekday's short name in the user's language, Monday = 0 as the shift calendar counts ("Mon", "월"). */
export function formatWeekday(day: number): string {
  // 2024-01-01 was a Monday; read in UTC so the plant's zone cannot move it to another day
  return new Intl.DateTimeFormat(locale(), { weekday: "short", timeZone: "UTC" })
    .format(new Date(Date.UTC(2024, 0, 1 + day)));
}
