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
import { ErrorNotice, PageTitle, StatusChip, Updated, When } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { useAlerts } from "../store/alerts";

export const ALERTS_INTERVAL_MS = 30_000;

const columns: ColumnDef<AlertRow, any>[] = [
  { accessorKey: "severity", header: "Severity", cell: (i) => <StatusChip status={i.getValue()} /> },
  { accessorKey: "source", header: "Source" },
  { accessorKey: "message", header: "Message" },
  { accessorKey: "raised_at", header: "Raised", cell: (i) => <When at={i.getValue()} /> },
  {
    accessorKey: "resolved_at", header: "Resolved",
    cell: (i) => (i.getValue() ? <When at={i.getValue()} /> : <StatusChip status="open" label="open" />),
  },
];

export function AlertsPage() {
  const open = useAlerts();
  const [withResolved, setWithResolved] = useState(false);
  const fetchAll = useCallback((signal: AbortSignal) => endpoints.alerts(true, signal), []);
  const all = usePolling("alerts:all", fetchAll, ALERTS_INTERVAL_MS, withResolved);
  const shown = withResolved ? all : open;
  const missing = shown.error?.status === 404;

  return (
    <>
      <PageTitle action={<Updated at={shown.updatedAt} />}>Alerts</PageTitle>
      {missing ? (
        <Alert severity="info" sx={{ mb: 2 }}>
          Alerts are not available (the dashboard_kpi plugin is not installed or not loaded).
        </Alert>
      ) : (
        <ErrorNotice error={shown.error} retryInMs={shown.retryInMs} />
      )}
      <Box sx={{ display: "flex", gap: 2, alignItems: "center", mb: 2, flexWrap: "wrap" }}>
        {open.data && Object.entries(open.data.open_by_severity).map(([severity, n]) => (
          <StatusChip key={severity} status={severity} label={`${n} ${severity}`} />
        ))}
        {open.data && open.data.open === 0 && <StatusChip status="UP" label="no open alert" />}
        <FormControlLabel sx={{ ml: "auto" }} label="Show resolved"
                          control={<Switch checked={withResolved} onChange={(e) => setWithResolved(e.target.checked)} />} />
      </Box>
      <Paper variant="outlined">
        <DataTable label="Alerts" columns={columns} data={shown.data?.items ?? []} rowKey={(a) => String(a.id)}
                   emptyText={withResolved ? "No alert yet" : "No open alert"} />
      </Paper>
    </>
  );
}
