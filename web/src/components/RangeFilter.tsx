// The date range (plant calendar days) and line a KPI view covers, shared by the quality and executive views.
import { useEffect } from "react";
import { create } from "zustand";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import MenuItem from "@mui/material/MenuItem";
import TextField from "@mui/material/TextField";
import { useTranslation } from "react-i18next";
import type { KpiQuery } from "../api/endpoints";
import type { LineNow } from "../api/types";
import { plantDate, plantMidnight, usePlant } from "../i18n/format";
import { hashQuery } from "../router";

/** The server refuses longer ranges (`INVALID_RANGE`); the form says so before asking. */
export const MAX_RANGE_DAYS = 366;

export interface KpiRange {
  /** First and last plant-calendar day, both included (YYYY-MM-DD). */
  from: string;
  to: string;
  /** A line code, or "" for every line. */
  line: string;
}

const DAY_MS = 86_400_000;

export function daysAgo(days: number, now: Date = new Date()): string {
  return plantDate(new Date(now.getTime() - days * DAY_MS));
}

interface RangeState extends KpiRange {
  set(patch: Partial<KpiRange>): void;
}

/** One range for the quality and executive views: a manager moving between them keeps it. Empty days
 *  mean "the last 7 plant days" (see `useShownRange`). */
export const useKpiRange = create<RangeState>()((set) => ({
  from: "",
  to: "",
  line: "",
  set: (patch) => set(patch),
}));

/**
 * The range the views show: the days a manager chose, else the last 7 days of the plant's calendar, today
 * included — worked out at each render, in the plant's zone. (Worked out once when the page loaded, it took the
 * browser's calendar, before the kernel had said the plant's zone: a manager in New York missed the plant's
 * today; and a view left open over midnight kept yesterday's week.)
 */
export function useShownRange(): KpiRange {
  const { from, to, line } = useKpiRange();
  usePlant((s) => s.timeZone); // renders again once the plant's zone is known
  return { from: from || daysAgo(6), to: to || daysAgo(0), line };
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A link's range becomes the views' range when it is opened: `#/quality?from=2026-11-10&to=2026-11-30&line=L1`
 * (a date in another form is ignored; a link without `line` keeps the line chosen). The form changes it from there.
 */
export function useLinkedRange(): void {
  const set = useKpiRange((s) => s.set);
  useEffect(() => {
    const apply = () => {
      const query = hashQuery();
      const patch: Partial<KpiRange> = {};
      for (const key of ["from", "to"] as const) {
        const day = query.get(key);
        if (day && DAY.test(day)) patch[key] = day;
      }
      const line = query.get("line");
      if (line !== null) patch.line = line;
      if (Object.keys(patch).length) set(patch);
    };
    apply();
    window.addEventListener("hashchange", apply);
    return () => window.removeEventListener("hashchange", apply);
  }, [set]);
}

/** Why the range cannot be asked for, as a catalog key (null when it is fine). */
export function rangeProblem(range: Pick<KpiRange, "from" | "to">): string | null {
  if (!range.from || !range.to) return "range.missing";
  const days = (Date.parse(range.to) - Date.parse(range.from)) / DAY_MS + 1;
  if (!Number.isFinite(days)) return "range.missing";
  if (days < 1) return "range.reversed";
  if (days > MAX_RANGE_DAYS) return "range.tooLong";
  return null;
}

/** The range as the KPI endpoints take it: plant midnights with offset, `to` the midnight after the last day. */
export function kpiQuery(range: KpiRange, timeZone: string): KpiQuery {
  return {
    from: plantMidnight(range.from, 0, timeZone),
    to: plantMidnight(range.to, 1, timeZone),
    tz: timeZone,
    line: range.line || undefined,
  };
}

export function useKpiQuery(): { range: KpiRange; query: KpiQuery | null; problem: string | null } {
  const { from, to, line } = useShownRange();
  const timeZone = usePlant((s) => s.timeZone);
  const problem = rangeProblem({ from, to });
  return { range: { from, to, line }, query: problem ? null : kpiQuery({ from, to, line }, timeZone), problem };
}

const PRESETS = [
  { key: "range.last7", days: 7 },
  { key: "range.last30", days: 30 },
  { key: "range.last12weeks", days: 84 },
];

export function RangeFilter({ lines }: { lines: LineNow[] | undefined }) {
  const { t } = useTranslation();
  useLinkedRange();
  const range = { ...useKpiRange(), ...useShownRange() };
  const problem = rangeProblem(range);
  return (
    <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2, alignItems: "center", mb: 2 }}
         component="form" aria-label={t("range.label")} onSubmit={(e) => e.preventDefault()}>
      <TextField label={t("range.from")} type="date" size="small" value={range.from}
                 slotProps={{ inputLabel: { shrink: true } }} error={!!problem}
                 onChange={(e) => range.set({ from: e.target.value })} />
      <TextField label={t("range.to")} type="date" size="small" value={range.to}
                 slotProps={{ inputLabel: { shrink: true } }} error={!!problem}
                 helperText={problem ? t(problem, { days: MAX_RANGE_DAYS }) : undefined}
                 onChange={(e) => range.set({ to: e.target.value })} />
      <TextField select label={t("range.line")} size="small" value={range.line} sx={{ minWidth: 160 }}
                 slotProps={{ inputLabel: { shrink: true }, select: { displayEmpty: true } }}
                 onChange={(e) => range.set({ line: e.target.value })}>
        <MenuItem value="">{t("range.allLines")}</MenuItem>
        {(lines ?? []).map((l) => <MenuItem key={l.line} value={l.line}>{l.name || l.line}</MenuItem>)}
        {range.line && !(lines ?? []).some((l) => l.line === range.line) &&
          <MenuItem value={range.line}>{range.line}</MenuItem>}
      </TextField>
      <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
        {PRESETS.map((p) => (
          <Button key={p.key} size="small" variant="outlined"
                  onClick={() => range.set({ from: daysAgo(p.days - 1), to: daysAgo(0) })}>
            {t(p.key)}
          </Button>
        ))}
      </Box>
    </Box>
  );
}

/**
 * The range cut into calendar weeks (Monday to Sunday, plant days, both ends included); the first and
 * last weeks are cut at the range's ends.
 */
export function weeksOf(range: Pick<KpiRange, "from" | "to">): { from: string; to: string }[] {
  if (rangeProblem(range)) return [];
  const day = (text: string) => Date.parse(`${text}T00:00:00Z`);
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const weeks: { from: string; to: string }[] = [];
  const end = day(range.to);
  for (let start = day(range.from); start <= end;) {
    const weekday = (new Date(start).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
    const sunday = Math.min(start + (6 - weekday) * DAY_MS, end);
    weeks.push({ from: iso(start), to: iso(sunday) });
    start = sunday + DAY_MS;
  }
  return weeks;
}
