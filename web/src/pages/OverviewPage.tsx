// Overview: the KPI summary (every 10 s) and every panel the plugins declare, drawn generically.
import { useEffect } from "react";
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
import { useTranslation } from "react-i18next";
import { useStateLabel } from "../components/common";
import { formatNumber, formatPercent, setPlantTimeZone } from "../i18n/format";
import { hrefOf } from "../router";

export const SUMMARY_INTERVAL_MS = 10_000;
const PANELS_INTERVAL_MS = 5 * 60_000;

const grid = {
  display: "grid",
  gap: 2,
  gridTemplateColumns: { xs: "1fr", sm: "repeat(2, minmax(0, 1fr))", lg: "repeat(4, minmax(0, 1fr))" },
  mb: 3,
} as const;

function Kpi({ id, label, value, caption, href }: {
  id: string; label: string; value: string; caption?: string; href?: string;
}) {
  return (
    <Paper variant="outlined" sx={{ p: 2 }} component={href ? "a" : "div"} href={href}
           style={{ textDecoration: "none", color: "inherit" }}>
      <Typography variant="subtitle2" color="text.secondary">{label}</Typography>
      <Typography variant="h4" component="p" sx={{ fontWeight: 500 }} data-testid={`kpi-${id}`}>
        {value}
      </Typography>
      {caption && <Typography variant="body2" color="text.secondary">{caption}</Typography>}
    </Paper>
  );
}

export function SummaryCards({ summary }: { summary: Summary }) {
  const { t } = useTranslation();
  const stateLabel = useStateLabel();
  const { lots, records_today: records, stations, alerts } = summary;
  const active = (lots.by_status.in_progress ?? 0) + (lots.by_status.created ?? 0);
  const n = formatNumber;
  return (
    <Box sx={grid} component="section" aria-label={t("overview.summary")}>
      <Kpi id="Active LOTs" label={t("overview.activeLots")} value={n(active)} href={hrefOf({ name: "lots" })}
           caption={t("overview.lotsCaption", { onHold: n(lots.by_status.on_hold ?? 0), closed: n(lots.closed_today) })} />
      <Kpi id="First-pass yield" label={t("overview.firstPassYield")} value={formatPercent(records.first_pass_yield)}
           caption={t("overview.recordsCaption", { pass: n(records.pass), fail: n(records.fail) })} />
      <Kpi id="Stations online" label={t("overview.stationsOnline")}
           value={t("overview.ofTotal", { part: n(stations.online), total: n(stations.total) })}
           href={hrefOf({ name: "devices" })}
           caption={t("overview.stationsCaption", { silent: n(stations.silent), never: n(stations.never_seen) })} />
      <Kpi id="Open alerts" label={t("overview.openAlerts")} value={n(alerts.open)} href={hrefOf({ name: "alerts" })}
           caption={Object.entries(alerts.open_by_severity).map(([k, v]) => `${n(v)} ${stateLabel(k)}`).join(" · ") ||
             t("overview.none")} />
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
  const { t } = useTranslation();
  const summary = usePolling("GET /dashboard/summary", endpoints.summary, SUMMARY_INTERVAL_MS);
  const panels = usePolling("GET /dashboard/panels", endpoints.panels, PANELS_INTERVAL_MS);
  const summaryMissing = summary.error?.status === 404;
  const zone = summary.data?.timezone;
  useEffect(() => setPlantTimeZone(zone), [zone]);

  return (
    <>
      <PageTitle action={<Updated at={summary.updatedAt} />}>{t("nav.overview")}</PageTitle>
      {summaryMissing ? (
        <Alert severity="info" sx={{ mb: 2 }}>{t("overview.missing")}</Alert>
      ) : (
        <ErrorNotice error={summary.error} retryInMs={summary.retryInMs} what={t("overview.summary")} />
      )}
      {summary.data && (
        <ErrorBoundary what={t("overview.summary")} resetKey={summary.data}>
          <SummaryCards summary={summary.data} />
        </ErrorBoundary>
      )}
      <ErrorNotice error={panels.error} retryInMs={panels.retryInMs} what={t("overview.panels")} />
      {panels.data && panels.data.length === 0 && (
        <Typography color="text.secondary">{t("overview.noPanels")}</Typography>
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
