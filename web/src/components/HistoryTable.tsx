// A LOT's or unit's history table: station time in "When" (server receipt on hover), older pages on demand.
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import type { HistoryEvent } from "../api/types";
import { happenedAt, type HistoryState } from "../hooks/useHistory";
import { formatDateTime, formatNumber } from "../i18n/format";
import { hrefOf } from "../router";
import { DataTable } from "./DataTable";
import { ErrorNotice, StatusChip, When } from "./common";

const lotStatus = (status: unknown, t: TFunction) =>
  t(`lotStatus.${String(status)}`, { defaultValue: String(status) });

function describe(event: HistoryEvent, t: TFunction): string {
  const d = event.data;
  if (event.type === "scan") return t("history.scan", { code: String(d.code ?? event.serial_number ?? "") });
  if (event.type === "registration") return t("history.registered", { serial: String(event.serial_number ?? "") });
  if (event.type === "status_change") {
    if (d.from === null || d.from === undefined) return t("history.created");
    const change = { from: lotStatus(d.from, t), to: lotStatus(d.to, t), reason: String(d.reason ?? "") };
    return t(d.reason ? "history.statusChangeWhy" : "history.statusChange", change);
  }
  if (event.type === "process_record") {
    return t(d.defect_code ? "history.recordWithDefect" : "history.record", {
      process: String(d.process_id), result: t(`result.${String(d.result)}`, { defaultValue: String(d.result) }),
      defect: String(d.defect_code ?? ""),
    });
  }
  const detail = (d.detail ?? {}) as Record<string, unknown>;
  const driver = d.driver ? `${String(d.driver)}${d.driver_version ? " " + String(d.driver_version) : ""}` : "";
  const text = t(driver ? "history.actionVia" : "history.action", {
    plugin: String(d.plugin), action: String(d.action), device: String(d.device), driver,
    outcome: t(`result.${String(d.outcome)}`, { defaultValue: String(d.outcome) }),
  });
  return typeof detail.error === "string" ? `${text} — ${detail.error}` : text;
}

function who(event: HistoryEvent): string {
  const d = event.data;
  return String(d.worker_id ?? event.actor ?? d.actor ?? d.created_by ?? "") || "—";
}

const KIND_LABELS: Record<HistoryEvent["type"], string> = {
  process_record: "history.kindProcess",
  device_action: "history.kindDevice",
  scan: "history.kindScan",
  status_change: "history.kindStatus",
  registration: "history.kindRegistration",
};

export function historyColumns(t: TFunction): ColumnDef<HistoryEvent, any>[] {
  return [
    {
      id: "when", header: t("history.when"), accessorFn: happenedAt,
      cell: (i) => (
        <span data-testid="history-when">
          <When at={i.getValue()} hover={t("history.receivedAt", {
            time: formatDateTime(i.row.original.received_at ?? i.row.original.at) })} />
        </span>
      ),
    },
    { accessorKey: "type", header: t("history.kind"),
      cell: (i) => t(KIND_LABELS[i.getValue() as HistoryEvent["type"]] ?? "history.kindDevice") },
    {
      id: "station", header: t("history.station"), accessorFn: (e) => e.station ?? "",
      cell: (i) => {
        const seq = i.row.original.seq;
        return i.getValue()
          ? <span title={seq ? t("history.sequence", { seq }) : undefined}>{i.getValue()}</span> : "—";
      },
    },
    {
      accessorKey: "serial_number", header: t("history.serial"),
      cell: (i) => i.getValue()
        ? <Link href={hrefOf({ name: "unit", serialNumber: i.getValue() })}>{i.getValue()}</Link> : t("history.lot"),
    },
    { id: "what", header: t("history.what"), accessorFn: (e) => describe(e, t) },
    {
      id: "result", header: t("history.result"),
      accessorFn: (e) => e.type === "process_record" || e.type === "device_action"
        ? String(e.data.result ?? e.data.outcome ?? "") : "",
      cell: (i) => {
        const v = String(i.getValue());
        return <StatusChip status={v === "pass" || v === "ok" ? "UP" : v === "" ? "info" : "DOWN"}
                           label={v ? t(`result.${v}`, { defaultValue: v }) : "—"} />;
      },
    },
    { id: "who", header: t("history.who"), accessorFn: who },
  ];
}

export function HistoryTable({ history, label }: { history: HistoryState<unknown>; label: string }) {
  const { t } = useTranslation();
  return (
    <>
      <ErrorNotice error={history.latest.error} retryInMs={history.latest.retryInMs} />
      {/* every event loaded so far, newest first; the button below the table (not inside its sideways
          scroll) loads the next older page */}
      <DataTable label={label} columns={historyColumns(t)} data={history.events} emptyText={t("history.empty")}
                 pageLongData={false} />
      <Box sx={{ display: "flex", alignItems: "center", gap: 2, mt: 1, flexWrap: "wrap" }}>
        <Typography variant="body2" color="text.secondary" data-testid="history-count">
          {t("history.showing", { shown: formatNumber(history.events.length), total: formatNumber(history.total) })}
        </Typography>
        {history.hasOlder && (
          <Button size="small" variant="outlined" onClick={history.loadOlder} disabled={history.loadingOlder}>
            {history.loadingOlder ? t("common.loading") : t("history.older")}
          </Button>
        )}
      </Box>
      <ErrorNotice error={history.olderError} />
    </>
  );
}
