// What is behind one bar of the quality view: the LOTs (most affected first) and the units, from
// `GET /kpi/drilldown`, over the range and line the bar was counted on; the totals are the bar's. A range
// covering archived months says so: their counts stay in the bar, their records are no longer listed.
import { useCallback, useEffect, useState } from "react";
import Alert from "@mui/material/Alert";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import ToggleButton from "@mui/material/ToggleButton";
import ToggleButtonGroup from "@mui/material/ToggleButtonGroup";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import { useTranslation } from "react-i18next";
import { endpoints, keyOf } from "../api/endpoints";
import { toApiError, type ApiError } from "../api/client";
import type { DrillArchived, DrillDown, DrillLot, DrillOutcome, DrillUnit } from "../api/types";
import { DataTable } from "../components/DataTable";
import { kpiQuery } from "../components/RangeFilter";
import { endpointMissing, ErrorNotice, NotAvailable, PageTitle, Section, Updated } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { formatDateTime, formatMonths, formatNumber, formatPercent, usePlant } from "../i18n/format";
import { drillTarget, hrefOf, useRoute } from "../router";
import { KPI_INTERVAL_MS } from "./QualityPage";

const PAGE = 50;

function unitLink(unit: DrillUnit) {
  return unit.serial_number
    ? <Link href={hrefOf({ name: "unit", serialNumber: unit.serial_number })}>{unit.serial_number}</Link>
    : null;
}

/** The archived months the range covers, and what of the bar the lists lack because of them. */
function ArchivedNotice({ archived, defect }: { archived: DrillArchived; defect: boolean }) {
  const { t } = useTranslation();
  const n = archived.not_listed;
  const lacking = n > 0 ? t(defect ? "drill.archivedRecords" : "drill.archivedItems", { count: n, n: formatNumber(n) })
    : defect ? "" : t("drill.archivedHistories");
  return (
    <Alert severity="info" sx={{ mb: 2 }} data-testid="drill-archived">
      {t("drill.archived", { months: formatMonths(archived.months) })}{lacking ? ` ${lacking}` : ""}{" "}
      {t("drill.archivedRestore")}
    </Alert>
  );
}

/** `#/quality/drill` without a bar (typed, bookmarked, cut short): where to choose one. */
function NoBarChosen() {
  const { t } = useTranslation();
  const back = hrefOf({ name: "quality" });
  return (
    <>
      <PageTitle action={<Link href={back}>{t("drill.back")}</Link>}>{t("drill.title")}</PageTitle>
      <Alert severity="info" sx={{ mb: 2 }} data-testid="drill-choose">
        {t("drill.chooseBar")} <Link href={back}>{t("drill.toQuality")}</Link>
      </Alert>
    </>
  );
}

export function DrillDownPage() {
  const { t } = useTranslation();
  useRoute(); // read the hash again when it changes
  const target = drillTarget();
  const timeZone = usePlant((s) => s.timeZone);
  const [outcome, setOutcome] = useState<DrillOutcome>("all");
  const query = target
    ? { ...kpiQuery({ from: target.from, to: target.to, line: target.line ?? "" }, timeZone),
        kind: target.kind, key: target.key ?? undefined,
        outcome: target.kind === "defect" ? undefined : outcome, limit: PAGE }
    : null;
  const key = query ? keyOf("/kpi/drilldown", { ...query }) : "none";
  const fetcher = useCallback((signal: AbortSignal) => endpoints.kpiDrillDown(query!, signal),
                              [key]);
  const drill = usePolling<DrillDown>(key, fetcher, KPI_INTERVAL_MS, !!query);
  // further pages of units, asked for with "Show more"; a new bar or outcome starts over
  const [more, setMore] = useState<{ key: string; units: DrillUnit[]; cursor: string | null }>();
  const [moreError, setMoreError] = useState<ApiError>();
  useEffect(() => { setMore(undefined); setMoreError(undefined); }, [key]);
  // the poll keeps the previous bar's answer until this one's arrives: show only this bar's
  const current = drill.data && target && drill.data.kind === target.kind && drill.data.key === (target.key || null)
    ? drill.data : undefined;
  const units = [...(current?.units ?? []), ...(more?.key === key ? more.units : [])];
  const cursor = more?.key === key ? more.cursor : current?.next_cursor ?? null;
  const showMore = async () => {
    if (!query || !cursor) return;
    try {
      const page = await endpoints.kpiDrillDown({ ...query, cursor });
      setMore({ key, units: [...(more?.key === key ? more.units : []), ...page.units], cursor: page.next_cursor });
    } catch (error) {
      setMoreError(toApiError(error));
    }
  };

  if (!target) return <NoBarChosen />;
  const defect = target.kind === "defect";
  const label = target.key ?? t("drill.noStation");
  const title = defect ? t("drill.defectTitle", { code: label }) : t("drill.yieldTitle", {
    group: t(`quality.group.${target.kind}`), key: label });
  const totals = current?.totals;
  // each count with its noun in the language's plural form ("1 unit", "2 units"; Korean has one form)
  const counted = (key: string, count: number | undefined) => t(key, { count: count ?? 0, n: formatNumber(count) });
  // a defect bar whose records are partly archived: its count, and how many of them are listed
  const partly = defect && totals?.listed !== undefined && totals.listed !== totals.count;
  const summary = totals && (defect
    ? t(partly ? "drill.defectTotalsListed" : "drill.defectTotals", {
        records: counted("drill.failedRecordCount", totals.count), listed: formatNumber(totals.listed),
        units: counted("drill.unitCount", totals.units), lots: counted("drill.lotCount", totals.lots) })
    : t("drill.yieldTotals", { items: counted("drill.itemCount", totals.total), firstPass: formatNumber(totals.first_pass),
                               passed: formatNumber(totals.passed), fpy: formatPercent(totals.first_pass_yield),
                               lots: counted("drill.lotCount", totals.lots) }));
  const lotColumns: ColumnDef<DrillLot, any>[] = [
    { accessorKey: "lot_number", header: t("drill.lot"),
      cell: (i) => <Link href={hrefOf({ name: "lot", lotNumber: i.getValue() })}>{i.getValue()}</Link> },
    { accessorKey: "product", header: t("quality.group.product") },
    ...(defect ? [
      { accessorKey: "count", header: t("drill.failedRecords"), cell: (i: any) => formatNumber(i.getValue()) },
      { accessorKey: "units", header: t("drill.units"), cell: (i: any) => formatNumber(i.getValue()) },
    ] : [
      { accessorKey: "total", header: t("drill.items"), cell: (i: any) => formatNumber(i.getValue()) },
      { accessorKey: "first_pass", header: t("quality.firstPass"), cell: (i: any) => formatNumber(i.getValue()) },
      { accessorKey: "passed", header: t("quality.passed"), cell: (i: any) => formatNumber(i.getValue()) },
    ]),
  ];
  const yesNo = (v: boolean | undefined) => (v ? t("common.yes") : t("common.no"));
  const unitColumns: ColumnDef<DrillUnit, any>[] = [
    { id: "serial", header: t("drill.unit"), cell: (i) => unitLink(i.row.original) ?? t("drill.lotLevel") },
    { accessorKey: "lot_number", header: t("drill.lot"),
      cell: (i) => <Link href={hrefOf({ name: "lot", lotNumber: i.getValue() })}>{i.getValue()}</Link> },
    ...(defect ? [
      { accessorKey: "count", header: t("drill.failedRecords"), cell: (i: any) => formatNumber(i.getValue()) },
      { accessorKey: "first_at", header: t("drill.firstAt"), cell: (i: any) => formatDateTime(i.getValue()) },
      { accessorKey: "last_at", header: t("drill.lastAt"), cell: (i: any) => formatDateTime(i.getValue()) },
    ] : [
      { accessorKey: "process", header: t("quality.group.process") },
      { accessorKey: "station", header: t("quality.group.station") },
      { accessorKey: "first_passed", header: t("drill.firstPassed"), cell: (i: any) => yesNo(i.getValue()) },
      { accessorKey: "passed", header: t("drill.passedInTheEnd"), cell: (i: any) => yesNo(i.getValue()) },
    ]),
  ];
  const picker = defect ? undefined : (
    <ToggleButtonGroup size="small" exclusive value={outcome} aria-label={t("drill.outcome")}
                       onChange={(_, value: DrillOutcome | null) => value && setOutcome(value)}>
      {(["all", "first_fail", "failed"] as const).map((o) => (
        <ToggleButton key={o} value={o}>{t(`drill.outcomes.${o}`)}</ToggleButton>))}
    </ToggleButtonGroup>
  );
  return (
    <>
      <PageTitle action={<Link href={hrefOf({ name: "quality" })}>{t("drill.back")}</Link>}>{title}</PageTitle>
      <Typography color="text.secondary" sx={{ mb: 2 }} data-testid="drill-range">
        {t("drill.range", { from: target.from, to: target.to, line: target.line || t("drill.allLines") })}
      </Typography>
      {endpointMissing(drill.error)
        ? <NotAvailable /> : <ErrorNotice error={drill.error} retryInMs={drill.retryInMs} />}
      {summary && <Typography sx={{ mb: 2 }} data-testid="drill-totals">{summary}</Typography>}
      {current?.archived && <ArchivedNotice archived={current.archived} defect={defect} />}
      {current && (
        <>
          <Section title={t("drill.lots")} action={<Updated at={drill.updatedAt} />}>
            <DataTable label={t("drill.lots")} columns={lotColumns} data={current.lots}
                       rowKey={(r) => r.lot_number} emptyText={t("common.nothing")} />
            {current.totals.lots > current.lots.length && (
              <Typography variant="caption">
                {t("drill.lotsShown", { shown: current.lots.length, total: current.totals.lots })}
              </Typography>
            )}
          </Section>
          <Section title={t("drill.unitsTitle")} action={picker}>
            <ErrorNotice error={moreError} />
            <DataTable label={t("drill.unitsTitle")} columns={unitColumns} data={units}
                       rowKey={(r) => `${r.serial_number ?? r.lot_number}|${r.process ?? ""}`}
                       emptyText={t("common.nothing")} />
            {cursor && <Button onClick={showMore} sx={{ mt: 1 }}>{t("drill.showMore")}</Button>}
          </Section>
        </>
      )}
    </>
  );
}
