// Alerts: the open ones (polled by the shell every 30 s), or every alert including resolved ones.
import { useCallback, useState } from "react";
import Box from "@mui/material/Box";
import FormControlLabel from "@mui/material/FormControlLabel";
import Paper from "@mui/material/Paper";
import Switch from "@mui/material/Switch";
import Alert from "@mui/material/Alert";
import type { ColumnDef } from "@tanstack/react-table";
import { endpoints } from "../api/endpoints";
import type { Alert as AlertRow } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, PageTitle, StatusChip, Updated, useStateLabel, When } from "../components/common";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { formatNumber } from "../i18n/format";
import { alertSource, alertText } from "../i18n/kernelTexts";
import { usePolling } from "../hooks/usePolling";
import { useAlerts } from "../store/alerts";

export const ALERTS_INTERVAL_MS = 30_000;

const columns = (t: TFunction): ColumnDef<AlertRow, any>[] => [
  { accessorKey: "severity", header: t("alerts.col.severity"), cell: (i) => <StatusChip status={i.getValue()} /> },
  { id: "source", header: t("alerts.col.source"), accessorFn: (a) => alertSource(a.source, t) },
  { id: "message", header: t("alerts.col.message"), accessorFn: (a) => alertText(a, t) },
  { accessorKey: "raised_at", header: t("alerts.col.raised"), cell: (i) => <When at={i.getValue()} /> },
  {
    accessorKey: "resolved_at", header: t("alerts.col.resolved"),
    cell: (i) => (i.getValue() ? <When at={i.getValue()} /> : <StatusChip status="open" />),
  },
];

export function AlertsPage() {
  const { t } = useTranslation();
  const stateLabel = useStateLabel();
  const open = useAlerts();
  const [withResolved, setWithResolved] = useState(false);
  const fetchAll = useCallback((signal: AbortSignal) => endpoints.alerts(true, signal), []);
  const all = usePolling("GET /alerts?include_resolved=true", fetchAll, ALERTS_INTERVAL_MS, withResolved);
  const shown = withResolved ? all : open;
  const missing = shown.error?.status === 404;

  return (
    <>
      <PageTitle action={<Updated at={shown.updatedAt} />}>{t("nav.alerts")}</PageTitle>
      {missing ? (
        <Alert severity="info" sx={{ mb: 2 }}>{t("alerts.missing")}</Alert>
      ) : (
        <ErrorNotice error={shown.error} retryInMs={shown.retryInMs} />
      )}
      <Box sx={{ display: "flex", gap: 2, alignItems: "center", mb: 2, flexWrap: "wrap" }}>
        {open.data && Object.entries(open.data.open_by_severity).map(([severity, n]) => (
          <StatusChip key={severity} status={severity} label={`${formatNumber(n)} ${stateLabel(severity)}`} />
        ))}
        {open.data && open.data.open === 0 && <StatusChip status="UP" label={t("alerts.noneOpen")} />}
        <FormControlLabel sx={{ ml: "auto" }} label={t("alerts.showResolved")}
                          control={<Switch checked={withResolved} onChange={(e) => setWithResolved(e.target.checked)} />} />
      </Box>
      <Paper variant="outlined">
        <DataTable label={t("nav.alerts")} columns={columns(t)} data={shown.data?.items ?? []} rowKey={(a) => String(a.id)}
                   emptyText={withResolved ? t("alerts.noneYet") : t("alerts.noOpen")} />
      </Paper>
    </>
  );
}
