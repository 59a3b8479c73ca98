// Production view: each line now — its current LOT, output against plan, OEE and open alerts.
import Box from "@mui/material/Box";
import LinearProgress from "@mui/material/LinearProgress";
import Link from "@mui/material/Link";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import { endpoints, keyOf } from "../api/endpoints";
import type { LineNow } from "../api/types";
import { ErrorNotice, NotAvailable, PageTitle, Updated } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { formatNumber, formatPercent, formatUnits } from "../i18n/format";
import { hrefOf } from "../router";
import { useCan } from "../store/auth";

export const LINES_NOW_INTERVAL_MS = 30_000;
export const LINES_NOW_KEY = keyOf("/kpi/lines/now");

/** The lines (code and name) for filters; shares the production view's poll of `/kpi/lines/now`. */
export function useLinesNow(enabled = true) {
  return usePolling(LINES_NOW_KEY, endpoints.linesNow, LINES_NOW_INTERVAL_MS, enabled);
}

function Figure({ label, value, testId, warning }: { label: string; value: string; testId?: string; warning?: string }) {
  return (
    <Box>
      <Typography variant="caption" color="text.secondary" component="p">{label}</Typography>
      <Typography variant="h6" component="p" data-testid={testId} color={warning ? "warning.main" : undefined}>
        {value}{warning && " ⚠"}
      </Typography>
      {warning && (
        <Typography variant="caption" color="warning.main" component="p" data-testid={testId && `${testId}-warning`}>
          {warning}
        </Typography>
      )}
    </Box>
  );
}

export function LineCard({ line }: { line: LineNow }) {
  const { t } = useTranslation();
  const share = line.plan ? Math.min(line.output / line.plan, 1) : null;
  return (
    <Paper variant="outlined" sx={{ p: 2, minWidth: 0 }} data-testid={`line-${line.line}`}>
      <Typography variant="h6" component="h2" sx={{ overflowWrap: "anywhere" }}>
        {line.name || line.line}
        <Typography component="span" variant="body2" color="text.secondary">{` · ${line.line}`}</Typography>
      </Typography>
      <Typography variant="body2" sx={{ mb: 1 }}>
        {t("production.currentLot")}{": "}
        {line.current_lot
          ? <Link href={hrefOf({ name: "lot", lotNumber: line.current_lot })}>{line.current_lot}</Link>
          : t("production.noLot")}
      </Typography>
      <Box sx={{ display: "grid", gridTemplateColumns: "repeat(3, minmax(0, 1fr))", gap: 1 }}>
        <Figure label={line.output_step ? t("production.outputAt", { step: line.output_step }) : t("production.output")}
                testId="output"
                value={line.plan ? t("production.ofPlan", { output: formatNumber(line.output),
                                                             plan: formatUnits(line.plan) })
                                 : formatNumber(line.output)} />
        <Figure label={t("kpi.oee")} value={formatPercent(line.oee)} testId="oee"
                warning={line.performance_over_ideal ? t("kpi.overIdeal") : undefined} />
        <Box>
          <Typography variant="caption" color="text.secondary" component="p">{t("production.openAlerts")}</Typography>
          <Typography variant="h6" component="p" data-testid="open-alerts">
            {line.open_alerts > 0
              ? <Link href={hrefOf({ name: "alerts" })} color="error">{formatNumber(line.open_alerts)}</Link>
              : formatNumber(line.open_alerts)}
          </Typography>
        </Box>
      </Box>
      {share !== null && (
        <LinearProgress variant="determinate" value={share * 100} sx={{ mt: 1, height: 8, borderRadius: 1 }}
                        aria-label={t("production.progress", { percent: formatPercent(share) })} />
      )}
    </Paper>
  );
}

export function ProductionPage() {
  const { t } = useTranslation();
  const lines = useLinesNow();
  const canEditShifts = useCan("shifts:write");
  return (
    <>
      <PageTitle action={
        <Box sx={{ display: "flex", gap: 2, alignItems: "center", flexWrap: "wrap" }}>
          {canEditShifts && <Link href={hrefOf({ name: "calendar" })}>{t("production.editCalendars")}</Link>}
          <Updated at={lines.updatedAt} />
        </Box>}>{t("production.title")}</PageTitle>
      {lines.error?.status === 404 ? <NotAvailable /> : (
        <ErrorNotice error={lines.error} retryInMs={lines.retryInMs} />
      )}
      {lines.data && lines.data.items.length === 0 && (
        <Typography color="text.secondary">{t("production.noLines")}</Typography>
      )}
      <Box sx={{ display: "grid", gap: 2,
                 gridTemplateColumns: { xs: "1fr", sm: "repeat(2, minmax(0, 1fr))", lg: "repeat(3, minmax(0, 1fr))" } }}>
        {lines.data?.items.map((line) => <LineCard key={line.line} line={line} />)}
      </Box>
    </>
  );
}
