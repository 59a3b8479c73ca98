// The audit trail (admins): every create, update and delete, newest first, filtered on the server.
import { useCallback, useMemo, useState } from "react";
import Box from "@mui/material/Box";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import { endpoints } from "../api/endpoints";
import type { AuditEntry } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, PageTitle, Updated, When } from "../components/common";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { useDebounced } from "../hooks/useDebounced";
import { usePolling } from "../hooks/usePolling";

/** What changed: the fields whose values differ between before and after. */
export function changeOf(entry: Pick<AuditEntry, "before" | "after">): string {
  const before = entry.before ?? {};
  const after = entry.after ?? {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const show = (v: unknown) => (v === undefined ? "∅" : typeof v === "object" ? JSON.stringify(v) : String(v));
  if (!entry.before) return keys.map((k) => `${k}=${show(after[k])}`).join(", ");
  return keys
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k}: ${show(before[k])} → ${show(after[k])}`)
    .join(", ");
}

const columns = (t: TFunction): ColumnDef<AuditEntry, any>[] => [
  { accessorKey: "occurred_at", header: t("audit.col.when"), cell: (i) => <When at={i.getValue()} /> },
  { accessorKey: "actor", header: t("audit.col.actor") },
  { accessorKey: "action", header: t("audit.col.action") },
  { accessorKey: "entity", header: t("audit.col.entity") },
  { accessorKey: "entity_id", header: t("audit.col.id") },
  {
    id: "change", header: t("audit.col.change"), accessorFn: changeOf,
    cell: (i) => <Typography variant="body2" sx={{ maxWidth: 480, overflowWrap: "anywhere" }}>{i.getValue()}</Typography>,
  },
  { accessorKey: "client_ip", header: t("audit.col.client"), cell: (i) => i.getValue() ?? "—" },
];

export function AuditPage() {
  const { t } = useTranslation();
  const [entity, setEntity] = useState("");
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [page, setPage] = useState({ pageIndex: 0, pageSize: 25 });
  // Debounced as text: an object would be new on every render and never settle.
  const filters = useDebounced(JSON.stringify({ entity: entity.trim(), actor: actor.trim(), action: action.trim() }),
                               300);
  const query = useMemo(() => ({
    ...(JSON.parse(filters) as { entity: string; actor: string; action: string }),
    limit: page.pageSize, offset: page.pageIndex * page.pageSize,
  }), [filters, page]);
  const fetcher = useCallback((signal: AbortSignal) => endpoints.audit(query, signal), [query]);
  const audit = usePolling(`GET /audit?${JSON.stringify(query)}`, fetcher, 30_000);
  const filter = (set: (v: string) => void) => (e: { target: { value: string } }) => {
    set(e.target.value);
    setPage((p) => ({ ...p, pageIndex: 0 }));
  };

  return (
    <>
      <PageTitle action={<Updated at={audit.updatedAt} />}>{t("nav.audit")}</PageTitle>
      <Paper variant="outlined" sx={{ p: 2, mb: 2 }}>
        <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
          <TextField size="small" label={t("audit.col.entity")} placeholder={t("audit.entityHint")} value={entity}
                     onChange={filter(setEntity)} />
          <TextField size="small" label={t("audit.col.actor")} placeholder={t("audit.actorHint")} value={actor} onChange={filter(setActor)} />
          <TextField size="small" label={t("audit.col.action")} placeholder={t("audit.actionHint")} value={action}
                     onChange={filter(setAction)} />
        </Box>
      </Paper>
      <ErrorNotice error={audit.error} retryInMs={audit.retryInMs} />
      <Paper variant="outlined">
        <DataTable label={t("nav.audit")} columns={columns(t)} data={audit.data?.items ?? []} rowKey={(e) => String(e.id)}
                   emptyText={audit.loading ? t("common.loading") : t("audit.none")}
                   paging={{ ...page, total: audit.data?.total ?? 0, onChange: setPage }} />
      </Paper>
    </>
  );
}
