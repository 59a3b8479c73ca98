// One LOT: its facts, a status change (for those who may write), its units and its history.
import { useCallback, useState } from "react";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import MenuItem from "@mui/material/MenuItem";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import Alert from "@mui/material/Alert";
import Link from "@mui/material/Link";
import type { ColumnDef } from "@tanstack/react-table";
import { toApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { HistoryEvent, LotStatus, Unit } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, LotStatusChip, PageTitle, Section, StatusChip, When } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { hrefOf } from "../router";
import { useCan } from "../store/auth";

const DETAIL_INTERVAL_MS = 15_000;

/** The kernel's allowed status transitions (it checks them again and answers INVALID_TRANSITION). */
export const TRANSITIONS: Record<LotStatus, LotStatus[]> = {
  created: ["in_progress", "on_hold", "closed", "scrapped"],
  in_progress: ["on_hold", "closed", "scrapped"],
  on_hold: ["in_progress", "closed", "scrapped"],
  closed: [],
  scrapped: [],
};

function describe(event: HistoryEvent): string {
  const d = event.data;
  if (event.type === "process_record") {
    const defect = d.defect_code ? ` (${String(d.defect_code)})` : "";
    return `${String(d.process_id)}: ${String(d.result)}${defect}`;
  }
  const driver = d.driver ? ` via ${String(d.driver)}${d.driver_version ? " " + String(d.driver_version) : ""}` : "";
  const detail = (d.detail ?? {}) as Record<string, unknown>;
  const error = typeof detail.error === "string" ? ` — ${detail.error}` : "";
  return `${String(d.plugin)} ${String(d.action)} on ${String(d.device)}${driver}: ${String(d.outcome)}${error}`;
}

function who(event: HistoryEvent): string {
  const d = event.data;
  return String(d.actor ?? d.created_by ?? d.worker_id ?? "—");
}

export const historyColumns: ColumnDef<HistoryEvent, any>[] = [
  { accessorKey: "at", header: "When", cell: (i) => <When at={i.getValue()} /> },
  { accessorKey: "type", header: "Kind", cell: (i) => i.getValue() === "process_record" ? "process" : "device" },
  {
    accessorKey: "serial_number", header: "Serial",
    cell: (i) => i.getValue()
      ? <Link href={hrefOf({ name: "unit", serialNumber: i.getValue() })}>{i.getValue()}</Link> : "LOT",
  },
  { id: "what", header: "What", accessorFn: describe },
  {
    id: "result", header: "Result",
    accessorFn: (e) => String(e.data.result ?? e.data.outcome ?? ""),
    cell: (i) => {
      const v = String(i.getValue());
      return <StatusChip status={v === "pass" || v === "ok" ? "UP" : v === "" ? "info" : "DOWN"} label={v || "—"} />;
    },
  },
  { id: "who", header: "Who", accessorFn: who },
];

const unitColumns: ColumnDef<Unit, any>[] = [
  {
    accessorKey: "serial_number", header: "Serial",
    cell: (i) => <Link href={hrefOf({ name: "unit", serialNumber: i.getValue() })}>{i.getValue()}</Link>,
  },
  { accessorKey: "status", header: "Status" },
  { accessorKey: "created_at", header: "Registered", cell: (i) => <When at={i.getValue()} /> },
];

function Fact({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <Box>
      <Typography variant="caption" color="text.secondary">{label}</Typography>
      <Typography component="div">{children}</Typography>
    </Box>
  );
}

export function StatusChanger({ lotNumber, status, onChanged }: {
  lotNumber: string;
  status: LotStatus;
  onChanged(): void;
}) {
  const [next, setNext] = useState<LotStatus | "">("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const allowed = TRANSITIONS[status] ?? [];
  if (allowed.length === 0) {
    return <Typography color="text.secondary">This LOT is {status}; its status no longer changes.</Typography>;
  }

  async function apply() {
    if (!next) return;
    setBusy(true);
    setError(null);
    try {
      await endpoints.updateLot(lotNumber, { status: next });
      setNext("");
      onChanged();
    } catch (err) {
      setError(toApiError(err).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap" }}>
      <TextField select size="small" label="New status" value={next} sx={{ minWidth: 180 }}
                 onChange={(e) => setNext(e.target.value as LotStatus)}>
        {allowed.map((s) => <MenuItem key={s} value={s}>{s.replace("_", " ")}</MenuItem>)}
      </TextField>
      <Button variant="outlined" onClick={apply} disabled={!next || busy}>Change status</Button>
      {error && <Alert severity="error" role="alert" sx={{ width: "100%" }}>{error}</Alert>}
    </Box>
  );
}

/** Serial numbers typed or scanned one per line (commas and spaces also separate them). */
export function parseSerials(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
}

export function UnitRegistration({ lotNumber, onAdded }: { lotNumber: string; onAdded(): void }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const serials = parseSerials(text);

  async function submit() {
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      const units = await endpoints.addUnits(lotNumber, serials);
      setAdded(units.length);
      setText("");
      onAdded();
    } catch (err) {
      setError(toApiError(err).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box sx={{ display: "flex", gap: 1, alignItems: "flex-start", flexWrap: "wrap", mb: 2 }}>
      <TextField label="Register serial numbers" placeholder="one per line (or scan)" multiline minRows={1}
                 maxRows={6} size="small" sx={{ minWidth: 320 }} value={text}
                 onChange={(e) => setText(e.target.value)} />
      <Button variant="outlined" onClick={submit} disabled={busy || serials.length === 0}>
        Register {serials.length > 0 ? serials.length : ""}
      </Button>
      {added !== null && <Alert severity="success" sx={{ width: "100%" }}>{added} unit(s) registered.</Alert>}
      {error && <Alert severity="error" role="alert" sx={{ width: "100%" }}>{error}</Alert>}
    </Box>
  );
}

export function LotDetailPage({ lotNumber }: { lotNumber: string }) {
  const canWrite = useCan("lots:write");
  const lotFetch = useCallback((signal: AbortSignal) => endpoints.lot(lotNumber, signal), [lotNumber]);
  const historyFetch = useCallback((signal: AbortSignal) => endpoints.lotHistory(lotNumber, signal), [lotNumber]);
  const unitsFetch = useCallback((signal: AbortSignal) => endpoints.lotUnits(lotNumber, signal), [lotNumber]);
  const lot = usePolling(`lot:${lotNumber}`, lotFetch, DETAIL_INTERVAL_MS);
  const history = usePolling(`lot-history:${lotNumber}`, historyFetch, DETAIL_INTERVAL_MS);
  const units = usePolling(`lot-units:${lotNumber}`, unitsFetch, DETAIL_INTERVAL_MS * 2);
  const current = lot.data?.lot_number === lotNumber ? lot.data : undefined;

  return (
    <>
      <PageTitle action={<Button href={hrefOf({ name: "lots" })}>All LOTs</Button>}>
        LOT {lotNumber}
      </PageTitle>
      {lot.error?.status === 404 ? (
        <Alert severity="warning">LOT {lotNumber} does not exist.</Alert>
      ) : (
        <ErrorNotice error={lot.error} retryInMs={lot.retryInMs} />
      )}
      {current && (
        <Section title="LOT">
          <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: "repeat(auto-fill, minmax(160px, 1fr))", mb: 2 }}>
            <Fact label="Product">{current.product}</Fact>
            <Fact label="Status"><span data-testid="lot-status"><LotStatusChip status={current.status} /></span></Fact>
            <Fact label="Quantity">{current.quantity}</Fact>
            <Fact label="Units registered">{current.unit_count ?? units.data?.length ?? "—"}</Fact>
            <Fact label="Created"><When at={current.created_at} /></Fact>
            <Fact label="Updated"><When at={current.updated_at} /></Fact>
            {current.closed_at && <Fact label="Closed"><When at={current.closed_at} /></Fact>}
          </Box>
          {current.note && <Typography sx={{ mb: 2 }}>{current.note}</Typography>}
          {canWrite && (
            <StatusChanger lotNumber={lotNumber} status={current.status} onChanged={() => {
              lot.refresh();
              history.refresh();
            }} />
          )}
        </Section>
      )}
      {current && (
        <Section title={`History (${history.data?.events.length ?? 0})`}>
          <ErrorNotice error={history.error} retryInMs={history.retryInMs} />
          <DataTable label="History" columns={historyColumns} data={history.data?.events ?? []}
                     emptyText="No process record or device action yet" />
        </Section>
      )}
      {current && (
        <Section title={`Units (${units.data?.length ?? 0})`}>
          <ErrorNotice error={units.error} retryInMs={units.retryInMs} />
          {canWrite && TRANSITIONS[current.status].length > 0 && (
            <UnitRegistration lotNumber={lotNumber} onAdded={() => {
              units.refresh();
              lot.refresh();
            }} />
          )}
          <DataTable label="Units" columns={unitColumns} data={units.data ?? []} rowKey={(u) => u.serial_number}
                     emptyText="No serial number registered" />
        </Section>
      )}
    </>
  );
}
