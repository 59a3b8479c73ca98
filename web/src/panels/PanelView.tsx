// One plugin panel: fetches its endpoint every refresh_seconds and draws it by kind.
import { lazy, Suspense, useCallback, useMemo } from "react";
import Box from "@mui/material/Box";
import Paper from "@mui/material/Paper";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import { panelPath } from "../api/client";
import type { Panel } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, hasData, NoData } from "../components/common";
import { useTranslation } from "react-i18next";
import { ErrorBoundary } from "../components/ErrorBoundary";
import { usePolling } from "../hooks/usePolling";
import { api } from "../store/auth";
import { cellText, columnsOf, localizePanel, rowsOf, seriesOf, statOf, type Json } from "./panelData";

const TimeseriesChart = lazy(() => import("./Charts").then((m) => ({ default: m.TimeseriesChart })));
const BarsChart = lazy(() => import("./Charts").then((m) => ({ default: m.BarsChart })));

/** Never poll faster than this, whatever a plugin declares (the API allows 100 requests/minute). */
export const MIN_REFRESH_SECONDS = 5;

export function PanelBody({ panel, data }: { panel: Panel; data: Json }) {
  const { t } = useTranslation();
  const options = panel.options ?? {};
  switch (panel.kind) {
    case "stat": {
      const stat = statOf(data, options);
      return (
        <Box>
          <Typography variant="h3" component="p" data-testid="stat-value" sx={{ fontWeight: 500 }}>
            {stat.value}
          </Typography>
          {stat.caption && <Typography variant="body2" color="text.secondary">{stat.caption}</Typography>}
        </Box>
      );
    }
    case "timeseries":
    case "bar": {
      const view = seriesOf(data, options, panel.kind);
      // An empty or all-zero series draws as an empty frame: say so instead.
      if (!hasData(view.rows, view.series)) return <NoData />;
      const Chart = panel.kind === "bar" ? BarsChart : TimeseriesChart;
      return (
        <Suspense fallback={<Skeleton variant="rectangular" height={220} />}>
          <Chart view={view} stacked={options.stacked === true} />
        </Suspense>
      );
    }
    case "table": {
      const rows = rowsOf(data, options);
      const columns: ColumnDef<Record<string, Json>, unknown>[] = columnsOf(rows, options).map((c) => ({
        id: c.key,
        header: c.title,
        accessorFn: (row) => cellText(row, c),
      }));
      return <DataTable columns={columns} data={rows} emptyText={t("common.nothing")} label={panel.title} />;
    }
    default:
      return <Typography color="text.secondary">{t("panels.unknownKind", { kind: String(panel.kind) })}</Typography>;
  }
}

function panelKey(endpoint: string): string {
  try {
    return panelPath(endpoint);
  } catch {
    return endpoint; // refused by the fetcher, which shows why
  }
}

export function PanelView({ panel: declared }: { panel: Panel }) {
  const { t, i18n } = useTranslation();
  const panel = useMemo(() => localizePanel(declared, i18n.language), [declared, i18n.language]);
  const fetcher = useCallback(
    (signal: AbortSignal) => api.http.get<Json>(panelPath(panel.endpoint), { signal }).then((r) => r.data),
    [panel.endpoint],
  );
  const seconds = Math.max(panel.refresh_seconds || 30, MIN_REFRESH_SECONDS);
  // Keyed by URL: two panels (or a panel and a page) on one endpoint share one request per interval.
  const poll = usePolling(`GET ${panelKey(panel.endpoint)}`, fetcher, seconds * 1000);
  const wide = panel.kind === "timeseries" || panel.kind === "table";
  // Panels do not declare the permission their data needs: one this user may not read is left out.
  if (poll.error?.status === 403 && poll.data === undefined) return null;

  return (
    <Paper variant="outlined" sx={{ p: 2, gridColumn: wide ? { md: "span 2" } : undefined, minWidth: 0 }}
           data-testid={`panel-${panel.id}`} data-kind={panel.kind}>
      <Typography variant="subtitle2" component="h3" color="text.secondary" gutterBottom>
        {panel.title}
      </Typography>
      <ErrorNotice error={poll.error} retryInMs={poll.retryInMs} />
      {poll.data === undefined ? (
        poll.loading ? <Skeleton variant="rectangular" height={panel.kind === "stat" ? 60 : 180} /> : null
      ) : (
        <ErrorBoundary what={t("panels.panel", { title: panel.title })} resetKey={poll.data}>
          <PanelBody panel={panel} data={poll.data} />
        </ErrorBoundary>
      )}
    </Paper>
  );
}
