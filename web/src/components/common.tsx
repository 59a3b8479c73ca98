// Small pieces every page uses: status chips, error notices, section cards, timestamps.
import type { ReactNode } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Chip, { type ChipProps } from "@mui/material/Chip";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import type { ApiError } from "../api/client";
import { formatAge } from "../panels/panelData";

type Color = ChipProps["color"];

const STATUS_COLORS: Record<string, Color> = {
  UP: "success",
  DEGRADED: "warning",
  DOWN: "error",
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

export function StatusChip({ status, label }: { status: string; label?: string }) {
  return <Chip size="small" color={STATUS_COLORS[status] ?? "default"} label={label ?? status} />;
}

export function LotStatusChip({ status }: { status: string }) {
  return <Chip size="small" variant="outlined" color={LOT_COLORS[status] ?? "default"}
               label={status.replace("_", " ")} />;
}

/** A failed request, with a "retrying" note while a poller backs off. */
export function ErrorNotice({ error, retryInMs, what }: { error?: ApiError; retryInMs?: number; what?: string }) {
  if (!error) return null;
  const retry = retryInMs ? ` — retrying in ${Math.round(retryInMs / 1000)} s` : "";
  return (
    <Alert severity={error.status === 403 ? "info" : "error"} sx={{ mb: 2 }}>
      {what ? `${what}: ` : ""}
      {error.message} <Typography component="span" variant="caption">({error.code}){retry}</Typography>
    </Alert>
  );
}

export function Section({ title, action, children }: { title: string; action?: ReactNode; children: ReactNode }) {
  return (
    <Paper variant="outlined" sx={{ p: 2, mb: 2 }}>
      <Box sx={{ display: "flex", alignItems: "center", mb: 1, gap: 1 }}>
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
    <Box sx={{ display: "flex", alignItems: "center", mb: 2, gap: 2 }}>
      <Typography variant="h5" component="h1" sx={{ flexGrow: 1 }}>
        {children}
      </Typography>
      {action}
    </Box>
  );
}

export function When({ at }: { at: string | null | undefined }) {
  if (!at) return <>—</>;
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return <>{at}</>;
  const age = (Date.now() - date.getTime()) / 1000;
  return (
    <span title={date.toISOString()}>
      {date.toLocaleString()}
      {age >= 0 && age < 7 * 86400 ? <Typography component="span" variant="caption" color="text.secondary">
        {` (${formatAge(age)} ago)`}</Typography> : null}
    </span>
  );
}

export function Updated({ at }: { at?: number }) {
  if (!at) return null;
  return (
    <Typography variant="caption" color="text.secondary">
      updated {new Date(at).toLocaleTimeString()}
    </Typography>
  );
}
