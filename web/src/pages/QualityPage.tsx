// Quality view: the defect Pareto and yield by process, station or product over a range, with drill-down.
import { lazy, Suspense, useCallback, useState } from "react";
import Box from "@mui/material/Box";
import Link from "@mui/material/Link";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import ToggleButton from "@mui/material/ToggleButton";
import ToggleButtonGroup from "@mui/material/ToggleButtonGroup";
import type { ColumnDef } from "@tanstack/react-table";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { endpoints, keyOf, type KpiQuery } from "../api/endpoints";
import type { ParetoItem, YieldGroup, YieldItem } from "../api/types";
import { DataTable } from "../components/DataTable";
import { endpointMissing, ErrorNotice, hasData, NoData, NotAvailable, PageTitle, Section, Updated } from "../components/common";
import { RangeFilter, useKpiQuery, type KpiRange } from "../components/RangeFilter";
import { usePolling } from "../hooks/usePolling";
import { formatNumber, formatPercent, formatPercentPoints } from "../i18n/format";
import { drillHref } from "../router";
import { useLinesNow } from "./ProductionPage";

const ParetoChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.ParetoChart })));
const YieldChart = lazy(() => import("../panels/KpiCharts").then((m) => ({ default: m.YieldChart })));

export const KPI_INTERVAL_MS = 60_000;
export const GROUPS: YieldGroup[] = ["process", "station", "product"];

/** The LOTs and units behind a bar (a defect code, or a step, station or product of the yield chart),
 * over the range and line the bar was counted on. A station bar without a key: records without a station. */
export function drillDown(range: KpiRange, group: YieldGroup | "defect", key: string | null): string {
  return drillHref({ kind: group, key, from: range.from, to: range.to, line: range.line || undefined });
}

const chartFallback = <Skeleton variant="rectangular" height={260} />;

function ParetoSection({ query, range }: { query: KpiQuery; range: KpiRange }) {
  const { t } = useTranslation();
  const fetcher = useCallback((signal: AbortSignal) => endpoints.kpiPareto(query, signal), [query]);
  const pareto = usePolling(keyOf("/kpi/pareto", { ...query }), fetcher, KPI_INTERVAL_MS);
  const columns: ColumnDef<ParetoItem, any>[] = [
    { accessorKey: "defect_code", header: t("quality.defect"),
      cell: (i) => <Link href={drillDown(range, "defect", i.getValue())}>{i.getValue()}</Link> },
    { accessorKey: "count", header: t("quality.count"), cell: (i) => formatNumber(i.getValue()) },
    { accessorKey: "percent", header: t("quality.percent"), cell: (i) => formatPercentPoints(i.getValue()) },
    { accessorKey: "cumulative_percent", header: t("quality.cumulative"),
      cell: (i) => formatPercentPoints(i.getValue()) },
  ];
  const items = pareto.data?.items ?? [];
  return (
    <Section title={t("quality.pareto")} action={<Updated at={pareto.updatedAt} />}>
      {endpointMissing(pareto.error) ? <NotAvailable /> : <ErrorNotice error={pareto.error} retryInMs={pareto.retryInMs} />}
      {pareto.data && (hasData(items, ["count"]) ? (
        <>
          <Suspense fallback={chartFallback}>
            <ParetoChart items={items}
                         onPick={(code) => { window.location.hash = drillDown(range, "defect", code).slice(1); }} />
          </Suspense>
          <DataTable label={t("quality.pareto")} columns={columns} data={items} rowKey={(r) => r.defect_code} />
        </>
      ) : <NoData />)}
    </Section>
  );
}

/** Retest records of a row: every record in the range that was not a unit's first try at the step (each unit
 *  first tried in the range has exactly one first-try record in it). Null when the server gives no records. */
export function retests(item: YieldItem): number | null {
  return typeof item.records === "number" ? Math.max(0, item.records - item.total) : null;
}

/** The yield table's columns, named as docs/kpi.md defines them: `total` counts units (items) first tried, not
 *  records; `passed` those finally good. */
export function yieldColumns(t: TFunction, group: YieldGroup, range: KpiRange): ColumnDef<YieldItem, any>[] {
  const num = (v: unknown) => (typeof v === "number" ? formatNumber(v) : "—");
  return [
    { accessorKey: "key", header: t(`quality.group.${group}`),
      cell: (i) => <Link href={drillDown(range, group, i.getValue())}>{i.getValue() ?? t("drill.noStation")}</Link> },
    { accessorKey: "total", header: t("quality.total"), cell: (i) => num(i.getValue()) },
    { accessorKey: "first_pass", header: t("quality.firstPass"), cell: (i) => num(i.getValue()) },
    { accessorKey: "passed", header: t("quality.passed"), cell: (i) => num(i.getValue()) },
    { accessorKey: "first_pass_yield", header: t("quality.firstPassYield"), cell: (i) => formatPercent(i.getValue()) },
    { accessorKey: "final_yield", header: t("quality.finalYield"), cell: (i) => formatPercent(i.getValue()) },
    { id: "records", header: t("quality.records"), accessorFn: (r) => r.records ?? null, cell: (i) => num(i.getValue()) },
    { id: "retests", header: t("quality.retests"), accessorFn: retests, cell: (i) => num(i.getValue()) },
  ];
}

function YieldSection({ query, range }: { query: KpiQuery; range: KpiRange }) {
  const { t } = useTranslation();
  const [group, setGroup] = useState<YieldGroup>("process");
  const fetcher = useCallback((signal: AbortSignal) => endpoints.kpiYield({ ...query, group_by: group }, signal),
                              [query, group]);
  const yields = usePolling(keyOf("/kpi/yield", { ...query, group_by: group }), fetcher, KPI_INTERVAL_MS);
  const items = yields.data?.group_by === group ? yields.data.items : [];
  const columns = yieldColumns(t, group, range);
  const picker = (
    <ToggleButtonGroup size="small" exclusive value={group} aria-label={t("quality.groupBy")}
                       onChange={(_, value: YieldGroup | null) => value && setGroup(value)}>
      {GROUPS.map((g) => <ToggleButton key={g} value={g}>{t(`quality.group.${g}`)}</ToggleButton>)}
    </ToggleButtonGroup>
  );
  return (
    <Section title={t("quality.yield")} action={picker}>
      {endpointMissing(yields.error) ? <NotAvailable /> : <ErrorNotice error={yields.error} retryInMs={yields.retryInMs} />}
      {yields.data && (hasData(items, ["total"]) ? (
        <>
          <Suspense fallback={chartFallback}>
            <YieldChart items={items} onPick={(key) => { window.location.hash = drillDown(range, group, key).slice(1); }} />
          </Suspense>
          <DataTable label={t("quality.yield")} columns={columns} data={items} rowKey={(r) => r.key} />
          <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }} data-testid="yield-legend">
            {t("quality.legend")}
          </Typography>
        </>
      ) : <NoData />)}
    </Section>
  );
}

export function QualityPage() {
  const { t } = useTranslation();
  const lines = useLinesNow();
  const { range, query, problem } = useKpiQuery();
  return (
    <>
      <PageTitle>{t("quality.title")}</PageTitle>
      <RangeFilter lines={lines.data?.items} />
      {query && !problem && (
        <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: "minmax(0, 1fr)" }}>
          <ParetoSection query={query} range={range} />
          <YieldSection query={query} range={range} />
        </Box>
      )}
    </>
  );
}
