// A line's shift calendar: the version in force now, every version before and after it, and — for those who may
// edit it (`shifts:write`) — the form for a new version (`GET/PUT /lines/{code}/shifts`).
import { useCallback, useEffect, useState } from "react";
import Alert from "@mui/material/Alert";
import Link from "@mui/material/Link";
import MenuItem from "@mui/material/MenuItem";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { toApiError, type ApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { Shift, ShiftCalendar, ShiftCalendarVersion } from "../api/types";
import { actorLabel } from "../components/actor";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, NotAvailable, PageTitle, Section, When } from "../components/common";
import { formatDateTime, formatNumber, formatWeekday } from "../i18n/format";
import { hashQuery, hrefOf, useRoute } from "../router";
import { useCan } from "../store/auth";
import { useLinesNow } from "./ProductionPage";
import { ShiftCalendarEditor } from "./ShiftCalendarEditor";

/** A shift in one line: "Night 22:00–06:00 · Mon, Tue · plan 450". */
export function shiftSummary(shift: Shift, t: TFunction): string {
  return t("calendar.summary", { name: shift.name, start: shift.start, end: shift.end,
                                 days: shift.days.map(formatWeekday).join(", "),
                                 plan: formatNumber(shift.planned_output) });
}

const shiftColumns = (t: TFunction): ColumnDef<Shift, any>[] => [
  { accessorKey: "name", header: t("calendar.field.name") },
  { id: "time", header: t("calendar.time"), accessorFn: (s) => `${s.start}–${s.end}` },
  { id: "days", header: t("calendar.field.days"), accessorFn: (s) => s.days.map(formatWeekday).join(", ") },
  { accessorKey: "planned_output", header: t("calendar.field.planned_output"), cell: (i) => formatNumber(i.getValue()) },
];

const versionColumns = (t: TFunction): ColumnDef<ShiftCalendarVersion, any>[] => [
  { accessorKey: "effective_from", header: t("calendar.from"), cell: (i) => formatDateTime(i.getValue()) },
  { accessorKey: "until", header: t("calendar.until"),
    cell: (i) => (i.getValue() ? formatDateTime(i.getValue()) : t("calendar.open")) },
  { id: "shifts", header: t("calendar.shifts"),
    cell: (i) => (i.row.original.shifts.length
      ? i.row.original.shifts.map((s) => <div key={s.name}>{shiftSummary(s, t)}</div>) : t("calendar.noShifts")) },
  { accessorKey: "updated_by", header: t("calendar.updatedBy"), cell: (i) => actorLabel(i.getValue(), t) },
  { accessorKey: "updated_at", header: t("calendar.updatedAt"), cell: (i) => <When at={i.getValue()} /> },
];

/** The line's calendar, read once per line (and after a save, from the save's answer). */
function useCalendar(line: string) {
  const [state, setState] = useState<{ line: string; data?: ShiftCalendar; error?: ApiError }>({ line });
  const load = useCallback((signal?: AbortSignal) => {
    if (!line) return;
    endpoints.shiftCalendar(line, signal).then((data) => setState({ line, data }), (error: unknown) => {
      if (!signal?.aborted) setState({ line, error: toApiError(error) });
    });
  }, [line]);
  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);
  const current = state.line === line ? state : { line };
  return { ...current, set: (data: ShiftCalendar) => setState({ line, data }) };
}

export function ShiftCalendarPage() {
  const { t } = useTranslation();
  useRoute(); // read the line from the hash again when it changes
  const canEdit = useCan("shifts:write");
  const lines = useLinesNow();
  const codes = lines.data?.items.map((l) => l.line) ?? [];
  const asked = hashQuery().get("line") ?? "";
  const line = asked || codes[0] || "";
  const calendar = useCalendar(line);
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => setSaved(null), [line]);
  const pick = (code: string) => {
    window.location.hash = `${hrefOf({ name: "calendar" }).slice(1)}?${new URLSearchParams({ line: code })}`;
  };
  const data = calendar.data;
  const versions = [...(data?.versions ?? [])].reverse(); // newest first

  return (
    <>
      <PageTitle action={<Link href={hrefOf({ name: "production" })}>{t("calendar.back")}</Link>}>
        {t("calendar.title")}
      </PageTitle>
      {lines.error?.status === 404 ? <NotAvailable /> : <ErrorNotice error={lines.error} retryInMs={lines.retryInMs} />}
      {lines.data && codes.length === 0 && <Typography color="text.secondary">{t("production.noLines")}</Typography>}
      {codes.length > 0 && (
        <TextField select size="small" label={t("calendar.line")} value={codes.includes(line) ? line : ""}
                   onChange={(e) => pick(e.target.value)} sx={{ minWidth: 220, mb: 2 }}
                   slotProps={{ htmlInput: { "data-testid": "calendar-line" } }}>
          {lines.data?.items.map((l) => (
            <MenuItem key={l.line} value={l.line}>{l.name ? `${l.name} · ${l.line}` : l.line}</MenuItem>
          ))}
        </TextField>
      )}
      {!canEdit && data && <Alert severity="info" sx={{ mb: 2 }}>{t("calendar.readOnly")}</Alert>}
      <ErrorNotice error={calendar.error} />
      {saved && <Alert severity="success" sx={{ mb: 2 }} data-testid="calendar-saved">{saved}</Alert>}
      {data && (
        <>
          <Section title={t("calendar.current")}>
            <Typography variant="body2" sx={{ mb: 1 }} data-testid="calendar-since">
              {data.effective_from
                ? t("calendar.since", { from: formatDateTime(data.effective_from), zone: data.timezone })
                : t("calendar.none")}
            </Typography>
            <DataTable label={t("calendar.current")} columns={shiftColumns(t)} data={data.shifts}
                       rowKey={(s) => s.name} emptyText={t("calendar.noShifts")} />
          </Section>
          {canEdit && (
            <ShiftCalendarEditor key={`${data.line}|${data.effective_from}|${data.versions.length}`} calendar={data}
                                 onSaved={(next) => {
                                   calendar.set(next);
                                   // the version just written: the one updated last
                                   const written = [...next.versions].sort((a, b) =>
                                     a.updated_at.localeCompare(b.updated_at)).at(-1);
                                   setSaved(t("calendar.saved", { from: formatDateTime(written?.effective_from) }));
                                 }} />
          )}
          <Section title={t("calendar.history")}>
            <DataTable label={t("calendar.history")} columns={versionColumns(t)} data={versions}
                       rowKey={(v) => v.effective_from} emptyText={t("calendar.noVersions")} />
          </Section>
        </>
      )}
    </>
  );
}
