// Overview: the KPI summary (every 10 s) and every panel the plugins declare, drawn generically.
import Box from "@mui/material/Box";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import Alert from "@mui/material/Alert";
import { endpoints } from "../api/endpoints";
import type { Panel, Summary } from "../api/types";
import { ErrorNotice, PageTitle, Updated } from "../components/common";
import { ErrorBoundary } from "../components/ErrorBoundary";
import { usePolling } from "../hooks/usePolling";
import { PanelView } from "../panels/PanelView";
import { formatValue } from "../panels/panelData";
import { hrefOf } from "../router";

export const SUMMARY_INTERVAL_MS = 10_000;
const PANELS_INTERVAL_MS = 5 * 60_000;

const grid = {
  display: "grid",
  gap: 2,
  gridTemplateColumns: { xs: "1fr", sm: "repeat(2, minmax(0, 1fr))", lg: "repeat(4, minmax(0, 1fr))" },
  mb: 3,
} as const;

function Kpi({ label, value, caption, href }: { label: string; value: string; caption?: string; href?: string }) {
  return (
    <Paper variant="outlined" sx={{ p: 2 }} component={href ? "a" : "div"} href={href}
           style={{ textDecoration: "none", color: "inherit" }}>
      <Typography variant="subtitle2" color="text.secondary">{label}</Typography>
      <Typography variant="h4" component="p" sx={{ fontWeight: 500 }} data-testid={`kpi-${label}`}>
        {value}
      </Typography>
      {caption && <Typography variant="body2" color="text.secondary">{caption}</Typography>}
    </Paper>
  );
}

export function SummaryCards({ summary }: { summary: Summary }) {
  const { lots, records_today: records, stations, alerts } = summary;
  const active = (lots.by_status.in_progress ?? 0) + (lots.by_status.created ?? 0);
  return (
    <Box sx={grid} aria-label="Summary">
      <Kpi label="Active LOTs" value={formatValue(active)} href={hrefOf({ name: "lots" })}
           caption={`${lots.by_status.on_hold ?? 0} on hold · ${lots.closed_today} closed today`} />
      <Kpi label="First-pass yield" value={formatValue(records.first_pass_yield, "percent")}
           caption={`${records.pass} pass · ${records.fail} fail today`} />
      <Kpi label="Stations online" value={`${stations.online} / ${stations.total}`} href={hrefOf({ name: "devices" })}
           caption={`${stations.silent} silent · ${stations.never_seen} never seen`} />
      <Kpi label="Open alerts" value={formatValue(alerts.open)} href={hrefOf({ name: "alerts" })}
           caption={Object.entries(alerts.open_by_severity).map(([k, v]) => `${v} ${k}`).join(" · ") || "none"} />
    </Box>
  );
}

const KIND_ORDER: Record<string, number> = { stat: 0, bar: 1, timeseries: 2, table: 3 };

/** Numbers first, then charts, then tables, each kind in the order the plugins declared them. */
export function orderPanels(panels: Panel[]): Panel[] {
  return panels
    .map((panel, index) => ({ panel, index }))
    .sort((a, b) => (KIND_ORDER[a.panel.kind] ?? 9) - (KIND_ORDER[b.panel.kind] ?? 9) || a.index - b.index)
    .map(({ panel }) => panel);
}

export function OverviewPage() {
  const summary = usePolling("summary", endpoints.summary, SUMMARY_INTERVAL_MS);
  const panels = usePolling("panels", endpoints.panels, PANELS_INTERVAL_MS);
  const summaryMissing = summary.error?.status === 404;

  return (
    <>
      <PageTitle action={<Updated at={summary.updatedAt} />}>Overview</PageTitle>
      {summaryMissing ? (
        <Alert severity="info" sx={{ mb: 2 }}>
          The KPI summary is not available (the dashboard_kpi plugin is not installed or not loaded).
        </Alert>
      ) : (
        <ErrorNotice error={summary.error} retryInMs={summary.retryInMs} what="Summary" />
      )}
      {summary.data && (
        <ErrorBoundary what="the summary" resetKey={summary.data}>
          <SummaryCards summary={summary.data} />
        </ErrorBoundary>
      )}
      <ErrorNotice error={panels.error} retryInMs={panels.retryInMs} what="Panels" />
      {panels.data && panels.data.length === 0 && (
        <Typography color="text.secondary">No plugin contributes dashboard panels.</Typography>
      )}
      <Box sx={{ ...grid, gridTemplateColumns: { xs: "1fr", md: "repeat(2, minmax(0, 1fr))",
                                                   xl: "repeat(4, minmax(0, 1fr))" } }}>
        {panels.data && orderPanels(panels.data).map((panel) => (
          <PanelView key={`${panel.plugin}:${panel.id}`} panel={panel} />
        ))}
      </Box>
    </>
  );
}
