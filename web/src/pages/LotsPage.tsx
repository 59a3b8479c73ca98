// LOT list: server-side filter, search and paging (TanStack Table); create a LOT; find a serial.
import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { create } from "zustand";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import MenuItem from "@mui/material/MenuItem";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Alert from "@mui/material/Alert";
import type { ColumnDef } from "@tanstack/react-table";
import { toApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { Lot, LotStatus } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, LotStatusChip, PageTitle, Updated, When } from "../components/common";
import { useDebounced } from "../hooks/useDebounced";
import { usePolling } from "../hooks/usePolling";
import { hashQuery, hrefOf, navigate } from "../router";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { formatNumber, plantMidnight } from "../i18n/format";
import { useCan } from "../store/auth";

export const LOT_STATUSES: LotStatus[] = ["created", "in_progress", "on_hold", "closed", "scrapped"];
const LIST_INTERVAL_MS = 30_000;
const SEARCH_DEBOUNCE_MS = 300;

interface LotFilters {
  status: string;
  /** Dates as the date input gives them (YYYY-MM-DD), days of the plant's calendar. */
  from: string;
  to: string;
  product: string;
  q: string;
  pageIndex: number;
  pageSize: number;
  set(patch: Partial<Omit<LotFilters, "set">>): void;
}

/** Filters survive a visit to a LOT's page and back. */
export const useLotFilters = create<LotFilters>()((set) => ({
  status: "",
  from: "",
  to: "",
  product: "",
  q: "",
  pageIndex: 0,
  pageSize: 25,
  set: (patch) => set(patch),
}));

/** The plant's midnight starting a YYYY-MM-DD date (plus `days`) as ISO-8601; "" when no date is set. */
export function dayStart(date: string, days = 0): string {
  return plantMidnight(date, days);
}

const columns = (t: TFunction): ColumnDef<Lot, any>[] => [
  { accessorKey: "lot_number", header: t("lots.lot"), cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "product", header: t("lot.product") },
  { accessorKey: "quantity", header: t("lot.quantity"), cell: (i) => formatNumber(i.getValue()) },
  { accessorKey: "status", header: t("lot.status"), cell: (i) => <LotStatusChip status={i.getValue()} /> },
  { accessorKey: "created_at", header: t("lot.created"), cell: (i) => <When at={i.getValue()} /> },
  { accessorKey: "updated_at", header: t("lot.updated"), cell: (i) => <When at={i.getValue()} /> },
];

/** Filters a link brings (`#/lots?from=…&to=…&product=…`, a drill-down from a chart) replace the current ones. */
export function applyLinkFilters(hash: string = window.location.hash): void {
  const query = hashQuery(hash);
  if (![...query.keys()].length) return;
  useLotFilters.getState().set({ from: query.get("from") ?? "", to: query.get("to") ?? "",
                                 product: query.get("product") ?? "", status: query.get("status") ?? "",
                                 q: query.get("q") ?? "", pageIndex: 0 });
}

export function CreateLotDialog({ open, onClose, onCreated }: {
  open: boolean;
  onClose(): void;
  onCreated(lot: Lot): void;
}) {
  const { t } = useTranslation();
  const [lotNumber, setLotNumber] = useState("");
  const [product, setProduct] = useState("");
  const [quantity, setQuantity] = useState("0");
  const [note, setNote] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const lot = await endpoints.createLot({ lot_number: lotNumber.trim(), product: product.trim(),
                                              quantity: Number(quantity) || 0, note });
      setLotNumber("");
      setProduct("");
      setQuantity("0");
      setNote("");
      onCreated(lot);
    } catch (err) {
      const apiError = toApiError(err);
      const fields = Array.isArray(apiError.detail.errors)
        ? (apiError.detail.errors as { loc: unknown[]; msg: string }[])
            .map((e) => `${e.loc[e.loc.length - 1]}: ${e.msg}`).join("; ")
        : "";
      setError(fields ? `${apiError.message} — ${fields}` : apiError.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog open={open} onClose={onClose} fullWidth maxWidth="xs">
      <form onSubmit={submit} aria-label={t("lots.new")}>
        <DialogTitle>{t("lots.new")}</DialogTitle>
        <DialogContent>
          {error && <Alert severity="error" role="alert" sx={{ mb: 1 }}>{error}</Alert>}
          <TextField label={t("lots.lotNumber")} name="lot_number" required fullWidth margin="dense" autoFocus
                     value={lotNumber} onChange={(e) => setLotNumber(e.target.value)} />
          <TextField label={t("lot.product")} name="product" required fullWidth margin="dense"
                     value={product} onChange={(e) => setProduct(e.target.value)} />
          <TextField label={t("lot.quantity")} name="quantity" type="number" fullWidth margin="dense"
                     value={quantity} onChange={(e) => setQuantity(e.target.value)} />
          <TextField label={t("lots.note")} name="note" fullWidth margin="dense" multiline minRows={2}
                     value={note} onChange={(e) => setNote(e.target.value)} />
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose}>{t("common.cancel")}</Button>
          <Button type="submit" variant="contained" disabled={busy || !lotNumber.trim() || !product.trim()}>
            {t("lots.create")}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

export function LotsPage() {
  const { t } = useTranslation();
  // A link with filters (a chart's drill-down) applies them before the first fetch, and on each new link.
  useState(() => applyLinkFilters());
  useEffect(() => {
    const onHash = () => applyLinkFilters();
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const filters = useLotFilters();
  const canWrite = useCan("lots:write");
  const [creating, setCreating] = useState(false);
  const [serial, setSerial] = useState("");
  const [created, setCreated] = useState<string | null>(null);
  const [search, setSearch] = useState(filters.q);
  const q = useDebounced(search, SEARCH_DEBOUNCE_MS);
  const [product, setProduct] = useState(filters.product);
  const productFilter = useDebounced(product, SEARCH_DEBOUNCE_MS);

  const { q: storedQ, product: storedProduct, set: setFilters } = filters;
  useEffect(() => {
    if (q !== storedQ || productFilter !== storedProduct) setFilters({ q, product: productFilter, pageIndex: 0 });
  }, [q, productFilter, storedQ, storedProduct, setFilters]);

  const query = useMemo(() => ({
    status: filters.status,
    created_from: dayStart(filters.from),
    created_to: dayStart(filters.to, 1),
    product: filters.product,
    q: filters.q,
    limit: filters.pageSize,
    offset: filters.pageIndex * filters.pageSize,
  }), [filters.status, filters.from, filters.to, filters.product, filters.q, filters.pageSize, filters.pageIndex]);
  const fetcher = useCallback((signal: AbortSignal) => endpoints.lots(query, signal), [query]);
  const lots = usePolling(`GET /lots?${JSON.stringify(query)}`, fetcher, LIST_INTERVAL_MS);

  function findSerial(event: FormEvent) {
    event.preventDefault();
    if (serial.trim()) navigate({ name: "unit", serialNumber: serial.trim() });
  }

  return (
    <>
      <PageTitle action={
        <>
          <Updated at={lots.updatedAt} />
          {canWrite && <Button variant="contained" onClick={() => setCreating(true)}>{t("lots.new")}</Button>}
        </>
      }>{t("lots.title")}</PageTitle>
      <Paper variant="outlined" sx={{ p: 2, mb: 2 }}>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2 }}>
          <TextField label={t("lots.search")} size="small" value={search} placeholder={t("lots.searchPlaceholder")}
                     onChange={(e) => setSearch(e.target.value)}
                     slotProps={{ htmlInput: { "aria-label": t("lots.searchLots") } }} />
          <TextField label={t("lot.product")} size="small" value={product} onChange={(e) => setProduct(e.target.value)} />
          <TextField select label={t("lot.status")} size="small" value={filters.status} sx={{ minWidth: 160 }}
                     slotProps={{ inputLabel: { shrink: true }, select: { displayEmpty: true } }}
                     onChange={(e) => filters.set({ status: e.target.value, pageIndex: 0 })}>
            <MenuItem value="">{t("lots.anyStatus")}</MenuItem>
            {LOT_STATUSES.map((s) => <MenuItem key={s} value={s}>{t(`lotStatus.${s}`)}</MenuItem>)}
          </TextField>
          <TextField label={t("lots.createdFrom")} type="date" size="small" value={filters.from}
                     slotProps={{ inputLabel: { shrink: true } }}
                     onChange={(e) => filters.set({ from: e.target.value, pageIndex: 0 })} />
          <TextField label={t("lots.createdTo")} type="date" size="small" value={filters.to}
                     slotProps={{ inputLabel: { shrink: true } }}
                     onChange={(e) => filters.set({ to: e.target.value, pageIndex: 0 })} />
          <Box component="form" onSubmit={findSerial} sx={{ ml: { md: "auto" } }}>
            <TextField label={t("lots.findSerial")} size="small" value={serial}
                       onChange={(e) => setSerial(e.target.value)} />
          </Box>
        </Box>
      </Paper>
      {created && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setCreated(null)}>
          {t("lots.created")} <a href={hrefOf({ name: "lot", lotNumber: created })}>{created}</a>
        </Alert>
      )}
      <ErrorNotice error={lots.error} retryInMs={lots.retryInMs} />
      <Paper variant="outlined">
        <DataTable
          label={t("lots.title")}
          columns={columns(t)}
          data={lots.data?.items ?? []}
          rowKey={(lot) => lot.lot_number}
          emptyText={lots.loading ? t("common.loading") : t("lots.none")}
          onRowClick={(lot) => navigate({ name: "lot", lotNumber: lot.lot_number })}
          paging={{
            pageIndex: filters.pageIndex,
            pageSize: filters.pageSize,
            total: lots.data?.total ?? 0,
            onChange: (p) => filters.set({ pageIndex: p.pageIndex, pageSize: p.pageSize }),
          }}
        />
      </Paper>
      {canWrite && (
        <CreateLotDialog open={creating} onClose={() => setCreating(false)} onCreated={(lot) => {
          setCreating(false);
          setCreated(lot.lot_number);
          lots.refresh();
        }} />
      )}
    </>
  );
}
