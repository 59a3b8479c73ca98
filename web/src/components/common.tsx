// Small pieces every page uses: status chips, error notices, section cards, timestamps, empty states.
import type { ReactNode } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Chip, { type ChipProps } from "@mui/material/Chip";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import type { ApiError } from "../api/client";
import { formatDateTime, formatDuration, formatTime } from "../i18n/format";

type Color = ChipProps["color"];

const STATUS_COLORS: Record<string, Color> = {
  UP: "success",
  DEGRADED: "warning",
  DOWN: "error",
  NOT_CONFIGURED: "default",
  idle: "default",
  loaded: "success",
  disabled: "default",
  incompatible: "warning",
  failed: "error",
  closed: "success",
  half_open: "warning",
  open: "error",
  critical: "error",
  warning: "warning",
  info: "info",
};

const LOT_COLORS: Record<string, Color> = {
  created: "default",
  in_progress: "primary",
  on_hold: "warning",
  closed: "success",
  scrapped: "error",
};

/** A state from the kernel (UP, open, loaded …): its words from the catalog, the value itself if unknown. */
export function useStateLabel(): (status: string) => string {
  const { t } = useTranslation();
  return (status: string) => t(`state.${status}`, { defaultValue: status });
}

export function StatusChip({ status, label }: { status: string; label?: string }) {
  const stateLabel = useStateLabel();
  return <Chip size="small" color={STATUS_COLORS[status] ?? "default"} label={label ?? stateLabel(status)} />;
}

export function LotStatusChip({ status }: { status: string }) {
  const { t } = useTranslation();
  return <Chip size="small" variant="outlined" color={LOT_COLORS[status] ?? "default"}
               label={t(`lotStatus.${status}`, { defaultValue: status })} />;
}

/** A failed request, with a "retrying" note while a poller backs off. */
export function ErrorNotice({ error, retryInMs, what }: { error?: ApiError; retryInMs?: number; what?: string }) {
  const { t } = useTranslation();
  if (!error) return null;
  return (
    <Alert severity={error.status === 403 ? "info" : "error"} sx={{ mb: 2 }}>
      {what ? `${what}: ` : ""}
      {t(`errors.${error.code}`, { defaultValue: error.message })}{" "}
      <Typography component="span" variant="caption">
        {`(${error.code})`}{retryInMs ? ` — ${t("common.retryingIn", { after: formatDuration(retryInMs / 1000) })}` : ""}
      </Typography>
    </Alert>
  );
}

/** A view whose endpoints this kernel does not have (an older kernel, or the KPI plugin not loaded). */
/** True when the kernel lacks the endpoint itself (404 `NOT_FOUND`: an older kernel, the plugin not loaded) —
 *  not when it answered that a thing asked for does not exist (`LOT_NOT_FOUND`, `LINE_NOT_FOUND` …). */
export function endpointMissing(error?: ApiError): boolean {
  return error?.status === 404 && error.code === "NOT_FOUND";
}

export function NotAvailable() {
  const { t } = useTranslation();
  return <Alert severity="info" sx={{ mb: 2 }} data-testid="not-available">{t("common.notAvailable")}</Alert>;
}

/** True when there is something to draw: at least one row with a non-zero value in one of `keys`. */
export function hasData<T>(rows: T[] | undefined, keys: (keyof T)[]): boolean {
  return !!rows && rows.some((row) => keys.some((k) => {
    const v = row[k];
    return typeof v === "number" && v !== 0;
  }));
}

export function NoData() {
  const { t } = useTranslation();
  return (
    <Typography color="text.secondary" sx={{ py: 4, textAlign: "center" }} data-testid="no-data">
      {t("common.noData")}
    </Typography>
  );
}

export function Section({ title, action, children }: { title: string; action?: ReactNode; children: ReactNode }) {
  return (
    <Paper variant="outlined" sx={{ p: 2, mb: 2, minWidth: 0 }} component="section" aria-label={title}>
      <Box sx={{ display: "flex", alignItems: "center", mb: 1, gap: 1, flexWrap: "wrap" }}>
        <Typography variant="h6" component="h2" sx={{ flexGrow: 1, fontSize: "1.05rem" }}>
          {title}
        </Typography>
        {action}
      </Box>
      {children}
    </Paper>
  );
}

export function PageTitle({ children, action }: { children: ReactNode; action?: ReactNode }) {
  return (
    <Box sx={{ display: "flex", alignItems: "center", mb: 2, gap: 2, flexWrap: "wrap" }}>
      <Typography variant="h5" component="h1" sx={{ flexGrow: 1, overflowWrap: "anywhere" }}>
        {children}
      </Typography>
      {action}
    </Box>
  );
}

/** An instant in the plant's zone, with its age when recent; `hover` replaces the tooltip ("" for none: the
 *  caller shows one of its own). */
export function When({ at, hover }: { at: string | null | undefined; hover?: string }) {
  const { t } = useTranslation();
  if (!at) return <>—</>;
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return <>{at}</>;
  const age = (Date.now() - date.getTime()) / 1000;
  return (
    <span title={hover === "" ? undefined : hover ?? date.toISOString()}>
      {formatDateTime(date)}
      {age >= 0 && age < 7 * 86400 ? <Typography component="span" variant="caption" color="text.secondary">
        {` (${t("common.ago", { age: formatDuration(age) })})`}</Typography> : null}
    </span>
  );
}

export function Updated({ at }: { at?: number }) {
  const { t } = useTranslation();
  if (!at) return null;
  return (
    <Typography variant="caption" color="text.secondary">
      {t("common.updated", { time: formatTime(at) })}
    </Typography>
  );
}
