// One LOT: its facts, a status change (for those who may write), its units and its history (paged).
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
import type { LotHistory, LotStatus, Unit } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, LotStatusChip, PageTitle, Section, When } from "../components/common";
import { HistoryTable } from "../components/HistoryTable";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { useHistory } from "../hooks/useHistory";
import { formatNumber } from "../i18n/format";
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

const unitColumns = (t: TFunction): ColumnDef<Unit, any>[] => [
  {
    accessorKey: "serial_number", header: t("lot.serial"),
    cell: (i) => <Link href={hrefOf({ name: "unit", serialNumber: i.getValue() })}>{i.getValue()}</Link>,
  },
  { accessorKey: "status", header: t("lot.unitStatus"),
    cell: (i) => t(`lotStatus.${String(i.getValue())}`, { defaultValue: String(i.getValue()) }) },
  { accessorKey: "created_at", header: t("lot.registered"), cell: (i) => <When at={i.getValue()} /> },
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
  const { t } = useTranslation();
  const [next, setNext] = useState<LotStatus | "">("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const allowed = TRANSITIONS[status] ?? [];
  if (allowed.length === 0) {
    return <Typography color="text.secondary">{t("lot.final", { status: t(`lotStatus.${status}`) })}</Typography>;
  }

  async function apply() {
    if (!next) return;
    setBusy(true);
    setError(null);
    try {
      await endpoints.updateLot(lotNumber, { status: next, ...(reason.trim() ? { reason: reason.trim() } : {}) });
      setNext("");
      setReason("");
      onChanged();
    } catch (err) {
      setError(toApiError(err).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap" }}>
      <TextField select size="small" label={t("lot.newStatus")} value={next} sx={{ minWidth: 180 }}
                 onChange={(e) => setNext(e.target.value as LotStatus)}>
        {allowed.map((s) => <MenuItem key={s} value={s}>{t(`lotStatus.${s}`)}</MenuItem>)}
      </TextField>
      <TextField size="small" label={t("lot.reason")} value={reason} sx={{ minWidth: 240 }}
                 slotProps={{ htmlInput: { maxLength: 500 } }} onChange={(e) => setReason(e.target.value)} />
      <Button variant="outlined" onClick={apply} disabled={!next || busy}>{t("lot.changeStatus")}</Button>
      {error && <Alert severity="error" role="alert" sx={{ width: "100%" }}>{error}</Alert>}
    </Box>
  );
}

/** Serial numbers typed or scanned one per line (commas and spaces also separate them). */
export function parseSerials(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
}

export function UnitRegistration({ lotNumber, onAdded }: { lotNumber: string; onAdded(): void }) {
  const { t } = useTranslation();
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
      <TextField label={t("lot.registerSerials")} placeholder={t("lot.serialsPlaceholder")} multiline minRows={1}
                 maxRows={6} size="small" sx={{ minWidth: 320 }} value={text}
                 onChange={(e) => setText(e.target.value)} />
      <Button variant="outlined" onClick={submit} disabled={busy || serials.length === 0}>
        {serials.length > 0 ? t("lot.registerN", { count: serials.length }) : t("lot.register")}
      </Button>
      {added !== null && <Alert severity="success" sx={{ width: "100%" }}>{t("lot.unitsAdded", { count: added })}</Alert>}
      {error && <Alert severity="error" role="alert" sx={{ width: "100%" }}>{error}</Alert>}
    </Box>
  );
}

export function LotDetailPage({ lotNumber }: { lotNumber: string }) {
  const { t } = useTranslation();
  const canWrite = useCan("lots:write");
  const lotFetch = useCallback((signal: AbortSignal) => endpoints.lot(lotNumber, signal), [lotNumber]);
  const unitsFetch = useCallback((signal: AbortSignal) => endpoints.lotUnits(lotNumber, signal), [lotNumber]);
  const lot = usePolling(`GET /lots/${lotNumber}`, lotFetch, DETAIL_INTERVAL_MS);
  const history = useHistory<LotHistory>({ kind: "lot", lotNumber }, DETAIL_INTERVAL_MS);
  const units = usePolling(`GET /lots/${lotNumber}/units?limit=500`, unitsFetch, DETAIL_INTERVAL_MS * 2);
  const current = lot.data?.lot_number === lotNumber ? lot.data : undefined;

  return (
    <>
      <PageTitle action={<Button href={hrefOf({ name: "lots" })}>{t("lot.all")}</Button>}>
        {t("lot.title", { lot: lotNumber })}
      </PageTitle>
      {lot.error?.status === 404 ? (
        <Alert severity="warning">{t("lot.missing", { lot: lotNumber })}</Alert>
      ) : (
        <ErrorNotice error={lot.error} retryInMs={lot.retryInMs} />
      )}
      {current && (
        <Section title={t("lot.facts")}>
          <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: "repeat(auto-fill, minmax(160px, 1fr))", mb: 2 }}>
            <Fact label={t("lot.product")}>{current.product}</Fact>
            <Fact label={t("lot.status")}><span data-testid="lot-status"><LotStatusChip status={current.status} /></span></Fact>
            <Fact label={t("lot.quantity")}>{formatNumber(current.quantity)}</Fact>
            <Fact label={t("lot.unitsRegistered")}>{current.unit_count ?? units.data?.length ?? "—"}</Fact>
            <Fact label={t("lot.created")}><When at={current.created_at} /></Fact>
            <Fact label={t("lot.updated")}><When at={current.updated_at} /></Fact>
            {current.closed_at && <Fact label={t("lot.closed")}><When at={current.closed_at} /></Fact>}
          </Box>
          {current.note && <Typography sx={{ mb: 2 }}>{current.note}</Typography>}
          {canWrite && (
            <StatusChanger lotNumber={lotNumber} status={current.status} onChanged={() => {
              lot.refresh();
              history.latest.refresh();
            }} />
          )}
        </Section>
      )}
      {current && (
        <Section title={t("history.titleN", { total: formatNumber(history.total) })}>
          <HistoryTable history={history} label={t("history.title")} />
        </Section>
      )}
      {current && (
        <Section title={t("lot.unitsN", { count: units.data?.length ?? 0 })}>
          <ErrorNotice error={units.error} retryInMs={units.retryInMs} />
          {canWrite && TRANSITIONS[current.status].length > 0 && (
            <UnitRegistration lotNumber={lotNumber} onAdded={() => {
              units.refresh();
              lot.refresh();
            }} />
          )}
          <DataTable label={t("lot.units")} columns={unitColumns(t)} data={units.data ?? []}
                     rowKey={(u) => u.serial_number} emptyText={t("lot.noUnits")} />
        </Section>
      )}
    </>
  );
}
