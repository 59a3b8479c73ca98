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

const columns: ColumnDef<AuditEntry, any>[] = [
  { accessorKey: "occurred_at", header: "When", cell: (i) => <When at={i.getValue()} /> },
  { accessorKey: "actor", header: "Actor" },
  { accessorKey: "action", header: "Action" },
  { accessorKey: "entity", header: "Entity" },
  { accessorKey: "entity_id", header: "Id" },
  {
    id: "change", header: "Change", accessorFn: changeOf,
    cell: (i) => <Typography variant="body2" sx={{ maxWidth: 480, overflowWrap: "anywhere" }}>{i.getValue()}</Typography>,
  },
  { accessorKey: "client_ip", header: "Client", cell: (i) => i.getValue() ?? "—" },
];

export function AuditPage() {
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
  const audit = usePolling(`audit:${JSON.stringify(query)}`, fetcher, 30_000);
  const filter = (set: (v: string) => void) => (e: { target: { value: string } }) => {
    set(e.target.value);
    setPage((p) => ({ ...p, pageIndex: 0 }));
  };

  return (
    <>
      <PageTitle action={<Updated at={audit.updatedAt} />}>Audit log</PageTitle>
      <Paper variant="outlined" sx={{ p: 2, mb: 2 }}>
        <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
          <TextField size="small" label="Entity" placeholder="lot, user, station…" value={entity}
                     onChange={filter(setEntity)} />
          <TextField size="small" label="Actor" placeholder="user:admin" value={actor} onChange={filter(setActor)} />
          <TextField size="small" label="Action" placeholder="create, update, delete" value={action}
                     onChange={filter(setAction)} />
        </Box>
      </Paper>
      <ErrorNotice error={audit.error} retryInMs={audit.retryInMs} />
      <Paper variant="outlined">
        <DataTable label="Audit log" columns={columns} data={audit.data?.items ?? []} rowKey={(e) => String(e.id)}
                   emptyText={audit.loading ? "Loading…" : "No entry matches"}
                   paging={{ ...page, total: audit.data?.total ?? 0, onChange: setPage }} />
      </Paper>
    </>
  );
}
