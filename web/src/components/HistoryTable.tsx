// A LOT's or unit's history: a table from the `md` breakpoint up, a list of stacked entries below it (a phone);
// station time in "When" (the server's receipt on hover, focus or tap), older pages on demand.
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import Paper from "@mui/material/Paper";
import Tooltip from "@mui/material/Tooltip";
import Typography from "@mui/material/Typography";
import { useTheme } from "@mui/material/styles";
import useMediaQuery from "@mui/material/useMediaQuery";
import type { ColumnDef } from "@tanstack/react-table";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import type { HistoryEvent } from "../api/types";
import { happenedAt, type HistoryState } from "../hooks/useHistory";
import { formatDateTime, formatNumber } from "../i18n/format";
import { hrefOf } from "../router";
import { actorLabel } from "./actor";
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
    // a reason the server wrote comes as a code (its English text beside it, for API users); a person's as typed
    const reason = d.reason_code
      ? t(`history.reason.${String(d.reason_code)}`, { defaultValue: String(d.reason ?? d.reason_code) })
      : String(d.reason ?? "");
    const change = { from: lotStatus(d.from, t), to: lotStatus(d.to, t), reason };
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
  // a failure the plugin classified (`detail.reason`, e.g. FLASH_TIMEOUT) in the UI's words; its English
  // message only when the code is one this dashboard does not know
  const code = typeof detail.reason === "string" ? detail.reason : "";
  const why = code && t(`history.deviceReason.${code}`, { defaultValue: "" });
  if (why) return `${text} — ${why}`;
  return typeof detail.error === "string" ? `${text} — ${detail.error}` : text;
}

/** Who did it: the worker a record names, else the event's actor — one spelling (see `actorLabel`). */
export function who(event: HistoryEvent, t: TFunction): string {
  const d = event.data;
  if (typeof d.worker_id === "string" && d.worker_id.trim()) return actorLabel(d.worker_id, t);
  return actorLabel(String(event.actor ?? d.actor ?? d.created_by ?? ""), t);
}

/** Station time; the server's receipt in a tooltip that opens on hover, keyboard focus and a tap. */
function WhenReceived({ event }: { event: HistoryEvent }) {
  const { t } = useTranslation();
  const received = t("history.receivedAt", { time: formatDateTime(event.received_at ?? event.at) });
  return (
    <Tooltip title={received} describeChild enterTouchDelay={0} leaveTouchDelay={6000}>
      <Box component="span" tabIndex={0} data-testid="history-when"
           sx={{ whiteSpace: "nowrap", borderBottom: "1px dotted", borderColor: "text.disabled", cursor: "help" }}>
        <When at={happenedAt(event)} hover="" />
      </Box>
    </Tooltip>
  );
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
      cell: (i) => <WhenReceived event={i.row.original} />,
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
        ? <Link href={hrefOf({ name: "unit", serialNumber: i.getValue() })} sx={{ whiteSpace: "nowrap" }}>
            {i.getValue()}</Link> : t("history.lot"),
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
    { id: "who", header: t("history.who"), accessorFn: (e) => who(e, t) },
  ];
}

const kindOf = (event: HistoryEvent, t: TFunction) => t(KIND_LABELS[event.type] ?? "history.kindDevice");

function resultOf(event: HistoryEvent): string {
  return event.type === "process_record" || event.type === "device_action"
    ? String(event.data.result ?? event.data.outcome ?? "") : "";
}

/** Below `md`: one stacked entry per event, every field on screen without sideways scrolling. */
function HistoryList({ events, label, emptyText }: { events: HistoryEvent[]; label: string; emptyText: string }) {
  const { t } = useTranslation();
  if (events.length === 0) {
    return <Typography color="text.secondary" sx={{ textAlign: "center", py: 3 }}>{emptyText}</Typography>;
  }
  return (
    <Box component="ol" aria-label={label} data-testid="history-list" sx={{ listStyle: "none", p: 0, m: 0,
                                                                             display: "grid", gap: 1 }}>
      {events.map((event, index) => {
        const result = resultOf(event);
        return (
          <Paper component="li" variant="outlined" key={`${event.at}-${index}`} data-testid="history-entry"
                 sx={{ p: 1.25, display: "grid", gap: 0.5, minWidth: 0, overflowWrap: "anywhere" }}>
            <Box sx={{ display: "flex", justifyContent: "space-between", gap: 1, alignItems: "center",
                       flexWrap: "wrap" }}>
              <Typography variant="body2" component="span"><WhenReceived event={event} /></Typography>
              {result && <StatusChip status={result === "pass" || result === "ok" ? "UP" : "DOWN"}
                                     label={t(`result.${result}`, { defaultValue: result })} />}
            </Box>
            <Typography variant="body2" component="p" sx={{ m: 0 }}>{describe(event, t)}</Typography>
            <Typography variant="caption" color="text.secondary" component="p" sx={{ m: 0 }}>
              {kindOf(event, t)}
              {event.station ? ` · ${t("history.station")} ${event.station}` : ""}
              {" · "}
              {event.serial_number
                ? <Link href={hrefOf({ name: "unit", serialNumber: event.serial_number })}
                        sx={{ whiteSpace: "nowrap" }}>{event.serial_number}</Link>
                : t("history.lot")}
              {` · ${t("history.who")}: ${who(event, t)}`}
            </Typography>
            <Typography variant="caption" color="text.secondary" component="p" sx={{ m: 0 }}
                        data-testid="history-received">
              {t("history.receivedAt", { time: formatDateTime(event.received_at ?? event.at) })}
            </Typography>
          </Paper>
        );
      })}
    </Box>
  );
}

export function HistoryTable({ history, label }: { history: HistoryState<unknown>; label: string }) {
  const { t } = useTranslation();
  const theme = useTheme();
  const stacked = useMediaQuery(theme.breakpoints.down("md"), { noSsr: true });
  return (
    <>
      <ErrorNotice error={history.latest.error} retryInMs={history.latest.retryInMs} />
      {/* every event loaded so far, newest first; the button below the table (not inside its sideways
          scroll) loads the next older page */}
      {stacked
        ? <HistoryList events={history.events} label={label} emptyText={t("history.empty")} />
        : <DataTable label={label} columns={historyColumns(t)} data={history.events} emptyText={t("history.empty")}
                     pageLongData={false} />}
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
