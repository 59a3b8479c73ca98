// Executive view: OEE (with its three factors) and weekly output against plan, per line, over a range.
import { lazy, Suspense, useCallback, useMemo } from "react";
import Box from "@mui/material/Box";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import type { TFunction } from "i18next";
import { endpoints, keyOf, type KpiQuery } from "../api/endpoints";
import type { OeeBucket, OutputItem, OutputStep, PerformanceSource, PeriodBounds } from "../api/types";
import { endpointMissing, ErrorNotice, hasData, NoData, NotAvailable, PageTitle, Section } from "../components/common";
import { RangeFilter, useKpiQuery } from "../components/RangeFilter";
import { usePolling } from "../hooks/usePolling";
import { formatNumber, formatPercent } from "../i18n/format";
import { weekLabel } from "../i18n/weeks";
import { KPI_INTERVAL_MS } from "./QualityPage";
import { useLinesNow } from "./ProductionPage";

const OutputChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.OutputChart })));
const WeeklyOeeChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.WeeklyOeeChart })));

/**
 * OEE week by week (ISO weeks of the plant's calendar) from the `buckets` of the line's one
 * `/kpi/oee?bucket=week` answer: no request of its own. All null or zero: "No data".
 */
function WeeklyOeeTrend({ line, buckets }: { line: string; buckets: OeeBucket[] }) {
  const { t } = useTranslation();
  const items = useMemo(() => buckets.map((b) => ({ ...weekLabel(b, t), oee: b.oee })), [buckets, t]);
  if (items.length < 2) return null;
  return (
    <Box sx={{ mb: 2 }} data-testid={`weekly-oee-${line || "all"}`}>
      <Typography variant="subtitle2" component="h3" color="text.secondary">{t("executive.oeeByWeek")}</Typography>
      {hasData(items, ["oee"]) ? (
        <Suspense fallback={<Skeleton variant="rectangular" height={200} />}>
          <WeeklyOeeChart items={items} />
        </Suspense>
      ) : <NoData />}
    </Box>
  );
}

/** Output against plan week by week, each week named as on the OEE chart (`weekLabel`). */
function WeeklyOutput({ items }: { items: OutputItem[] }) {
  const { t } = useTranslation();
  const weeks = useMemo(() => items.map((i) => ({ ...i, ...weekLabel(i, t) })), [items, t]);
  return hasData(weeks, ["good", "first_tried", "plan"]) ? (
    <Suspense fallback={<Skeleton variant="rectangular" height={220} />}>
      <OutputChart items={weeks} />
    </Suspense>
  ) : <NoData />;
}

/**
 * The weeks the range cuts (its first and last, unless it starts on a Monday and ends on a Sunday), said under
 * the charts: their output, plan and OEE count only the days in the range, not a whole week's.
 */
function PartialWeeks({ line, weeks }: { line: string; weeks: PeriodBounds[] }) {
  const { t } = useTranslation();
  const seen = new Map<string, string>();
  for (const w of weeks) {
    const note = weekLabel(w, t).partialNote;
    if (note && !seen.has(w.start)) seen.set(w.start, note);
  }
  if (!seen.size) return null;
  return (
    <Typography variant="caption" color="text.secondary" component="p" data-testid={`partial-weeks-${line || "all"}`}>
      {t("executive.partialWeeks", { weeks: [...seen.values()].join(", ") })}
    </Typography>
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

/** Where output is counted: the step of one line, or each line's ("L1 PACK-30 · L2 TEST-20"). */
function outputSteps(steps: OutputStep[], oneLine: boolean): string {
  return steps.map((s) => (oneLine || s.line === null ? s.step : `${s.line} ${s.step}`)).join(" · ");
}

/** OEE and weekly output of one line (or of every line when `line` is empty). */
export function LineSummary({ line, title, query }: { line: string; title: string; query: KpiQuery }) {
  const { t } = useTranslation();
  const scoped = useMemo(() => ({ from: query.from, to: query.to, tz: query.tz, line: line || undefined }),
                         [query.from, query.to, query.tz, line]);
  // one OEE request per line and interval: the range's factors and each week's, in one answer
  const oeeFetch = useCallback((signal: AbortSignal) => endpoints.kpiOee({ ...scoped, bucket: "week" }, signal),
                               [scoped]);
  const outputFetch = useCallback((signal: AbortSignal) => endpoints.kpiOutput({ ...scoped, bucket: "week" }, signal),
                                  [scoped]);
  const oee = usePolling(keyOf("/kpi/oee", { ...scoped, bucket: "week" }), oeeFetch, KPI_INTERVAL_MS * 5);
  const output = usePolling(keyOf("/kpi/output", { ...scoped, bucket: "week" }), outputFetch, KPI_INTERVAL_MS * 5);
  const missing = endpointMissing(oee.error) && endpointMissing(output.error);
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
      {o?.buckets && <WeeklyOeeTrend line={line} buckets={o.buckets} />}
      {output.data && <WeeklyOutput items={output.data.items} />}
      <PartialWeeks line={line} weeks={[...(o?.buckets ?? []), ...(output.data?.items ?? [])]} />
      {output.data?.output_steps?.length ? (
        <Typography variant="caption" color="text.secondary" component="p" data-testid={`output-steps-${line || "all"}`}>
          {t("executive.outputAt", { steps: outputSteps(output.data.output_steps, Boolean(line)) })}
        </Typography>
      ) : null}
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
          {!range.line && <LineSummary line="" title={t("range.allLines")} query={query} />}
          {shown.map((code) => <LineSummary key={code} line={code} title={nameOf(code)} query={query} />)}
        </>
      )}
    </>
  );
}
