// Executive view: OEE (with its three factors) and weekly output against plan, per line, over a range.
import { lazy, Suspense, useCallback, useMemo } from "react";
import Box from "@mui/material/Box";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import type { TFunction } from "i18next";
import { endpoints, keyOf, type KpiQuery } from "../api/endpoints";
import type { PerformanceSource } from "../api/types";
import { ErrorNotice, hasData, NoData, NotAvailable, PageTitle, Section } from "../components/common";
import { RangeFilter, useKpiQuery, weeksOf, type KpiRange } from "../components/RangeFilter";
import { usePolling } from "../hooks/usePolling";
import { formatNumber, formatPercent, plantMidnight } from "../i18n/format";
import { KPI_INTERVAL_MS } from "./QualityPage";
import { useLinesNow } from "./ProductionPage";

const OutputChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.OutputChart })));
const WeeklyOeeChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.WeeklyOeeChart })));

/** Weeks asked for one by one: at most this many (a year); longer ranges show the range's OEE only. */
const MAX_WEEKS = 53;

/**
 * OEE week by week for one scope: one `/kpi/oee` per calendar week (the contract has no weekly bucket
 * for OEE, and an average of shift OEEs would not be the week's OEE). Polled slowly, as one unit.
 */
function WeeklyOeeTrend({ line, range, query }: { line: string; range: KpiRange; query: KpiQuery }) {
  const { t } = useTranslation();
  const weeks = useMemo(() => weeksOf({ from: range.from, to: range.to }), [range.from, range.to]);
  const fetcher = useCallback((signal: AbortSignal) => Promise.all(weeks.map((w) => endpoints.kpiOee({
    from: plantMidnight(w.from, 0, query.tz), to: plantMidnight(w.to, 1, query.tz), tz: query.tz,
    line: line || undefined,
  }, signal).then((o) => ({ start: w.from, oee: o.oee })))), [weeks, query.tz, line]);
  const enabled = weeks.length > 1 && weeks.length <= MAX_WEEKS;
  const trend = usePolling(keyOf("/kpi/oee", { line, from: range.from, to: range.to, tz: query.tz, per: "week" }),
                           fetcher, KPI_INTERVAL_MS * 10, enabled);
  if (!enabled || trend.error?.status === 404) return null;
  return (
    <Box sx={{ mb: 2 }} data-testid={`weekly-oee-${line || "all"}`}>
      <Typography variant="subtitle2" component="h3" color="text.secondary">{t("executive.oeeByWeek")}</Typography>
      <ErrorNotice error={trend.error} retryInMs={trend.retryInMs} />
      {trend.data && (trend.data.some((w) => w.oee !== null) ? (
        <Suspense fallback={<Skeleton variant="rectangular" height={200} />}>
          <WeeklyOeeChart items={trend.data} />
        </Suspense>
      ) : <NoData />)}
    </Box>
  );
}

function Factor({ label, value, detail, testId, warning }: {
  label: string; value: string; detail?: string; testId?: string; warning?: string;
}) {
  return (
    <Box sx={{ minWidth: 0 }}>
      <Typography variant="caption" color="text.secondary" component="p">{label}</Typography>
      <Typography variant="h5" component="p" data-testid={testId} color={warning ? "warning.main" : undefined}>
        {value}{warning && " ⚠"}
      </Typography>
      {detail && <Typography variant="caption" color="text.secondary" component="p">{detail}</Typography>}
      {warning && (
        <Typography variant="caption" color="warning.main" component="p" data-testid={testId && `${testId}-warning`}>
          {warning}
        </Typography>
      )}
    </Box>
  );
}

/** What performance counted: the one line's bottleneck step and its ideal time, or each line's. */
function bottleneckDetail(sources: PerformanceSource[] | undefined, total: number, t: TFunction): string {
  const timed = (sources ?? []).filter((s) => s.step !== null);
  if (timed.length === 1) {
    const [s] = timed;
    return t("executive.performanceAt", { total: formatNumber(total), step: s.step,
                                          seconds: formatNumber(s.ideal_cycle_seconds ?? 0) });
  }
  return t(timed.length > 1 ? "executive.performanceAtBottlenecks" : "executive.performanceDetail",
           { total: formatNumber(total) });
}

/** OEE and weekly output of one line (or of every line when `line` is empty). */
export function LineSummary({ line, title, query, range }: {
  line: string; title: string; query: KpiQuery; range: KpiRange;
}) {
  const { t } = useTranslation();
  const scoped = useMemo(() => ({ from: query.from, to: query.to, tz: query.tz, line: line || undefined }),
                         [query.from, query.to, query.tz, line]);
  const oeeFetch = useCallback((signal: AbortSignal) => endpoints.kpiOee(scoped, signal), [scoped]);
  const outputFetch = useCallback((signal: AbortSignal) => endpoints.kpiOutput({ ...scoped, bucket: "week" }, signal),
                                  [scoped]);
  const oee = usePolling(keyOf("/kpi/oee", scoped), oeeFetch, KPI_INTERVAL_MS * 5);
  const output = usePolling(keyOf("/kpi/output", { ...scoped, bucket: "week" }), outputFetch, KPI_INTERVAL_MS * 5);
  const missing = oee.error?.status === 404 && output.error?.status === 404;
  const o = oee.data;
  return (
    <Section title={title}>
      {missing ? <NotAvailable /> : (
        <>
          <ErrorNotice error={oee.error} retryInMs={oee.retryInMs} what={t("kpi.oee")} />
          <ErrorNotice error={output.error} retryInMs={output.retryInMs} what={t("executive.output")} />
        </>
      )}
      {o && (
        <Box sx={{ display: "grid", gap: 2, mb: 2, gridTemplateColumns: { xs: "repeat(2, minmax(0, 1fr))",
                                                                             md: "repeat(4, minmax(0, 1fr))" } }}>
          <Factor label={t("kpi.oee")} value={formatPercent(o.oee)} testId={`oee-${line || "all"}`}
                  warning={o.performance.over_ideal ? t("kpi.overIdeal") : undefined} />
          <Factor label={t("kpi.availability")} value={formatPercent(o.availability.value)}
                  detail={t("executive.availabilityDetail", {
                    run: formatNumber(o.availability.run_seconds / 3600),
                    planned: formatNumber(o.availability.planned_seconds / 3600) })} />
          <Factor label={t("kpi.performance")} value={formatPercent(o.performance.value)}
                  testId={`performance-${line || "all"}`}
                  detail={bottleneckDetail(o.performance.computed_from, o.performance.total_count, t)}
                  warning={o.performance.over_ideal ? t("kpi.overIdeal") : undefined} />
          <Factor label={t("kpi.quality")} value={formatPercent(o.quality.value)}
                  detail={t("executive.qualityDetail", { good: formatNumber(o.quality.good),
                                                          total: formatNumber(o.quality.total) })} />
        </Box>
      )}
      {o && <WeeklyOeeTrend line={line} range={range} query={query} />}
      {output.data && (hasData(output.data.items, ["total", "good"]) ? (
        <Suspense fallback={<Skeleton variant="rectangular" height={220} />}>
          <OutputChart items={output.data.items} />
        </Suspense>
      ) : <NoData />)}
    </Section>
  );
}

export function ExecutivePage() {
  const { t } = useTranslation();
  const lines = useLinesNow();
  const { range, query } = useKpiQuery();
  const shown = range.line ? [range.line] : (lines.data?.items ?? []).map((l) => l.line);
  const nameOf = (code: string) => lines.data?.items.find((l) => l.line === code)?.name || code;
  return (
    <>
      <PageTitle>{t("executive.title")}</PageTitle>
      <RangeFilter lines={lines.data?.items} />
      {query && (
        <>
          {!range.line && <LineSummary line="" title={t("range.allLines")} query={query} range={range} />}
          {shown.map((code) => <LineSummary key={code} line={code} title={nameOf(code)} query={query} range={range} />)}
        </>
      )}
    </>
  );
}
