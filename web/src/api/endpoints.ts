// Typed calls to the kernel and plugin endpoints the pages use.
import type {
  AlertList,
  AuditEntry,
  BreakerState,
  Device,
  HealthTree,
  LabelTemplate,
  ZplInspection,
  Lot,
  LotHistory,
  LinesNow,
  LotStatus,
  Oee,
  OeeBucketSize,
  Output,
  OutputBucket,
  Page,
  Pareto,
  Panel,
  PluginRecord,
  ShiftCalendar,
  ShiftCalendarChange,
  Station,
  Summary,
  TemplateUpload,
  Unit,
  UnitHistory,
  YieldAnswer,
  DrillDown,
  DrillKind,
  DrillOutcome,
  YieldGroup,
} from "./types";
import { api } from "../store/auth";

/** Query parameters without the empty ones (an empty filter means "any"). */
export function params(values: Record<string, string | number | boolean | null | undefined>) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== null && v !== ""));
}

/** The key a poll is shared under: the path and its non-empty query, sorted (one URL, one request). */
export function keyOf(path: string, query: Record<string, string | number | boolean | null | undefined> = {}): string {
  const search = new URLSearchParams(Object.entries(params(query)).map(([k, v]) => [k, String(v)]) as [string, string][]);
  search.sort();
  const text = search.toString();
  return `GET ${path}${text ? `?${text}` : ""}`;
}

/**
 * A KPI range: `from`/`to` are ISO-8601 instants with the plant's offset (`to` exclusive), `tz` the
 * plant's zone, `line` a line code or empty for all lines.
 */
export interface KpiQuery {
  from: string;
  to: string;
  tz: string;
  line?: string;
}

/** A page of history: at most `limit` events older than the cursor `before` (none: the newest). */
export interface HistoryQuery {
  limit: number;
  before?: string | null;
}

export const HISTORY_PAGE_SIZE = 100;

const get = <T,>(path: string, signal?: AbortSignal, query?: Record<string, unknown>) =>
  api.http.get<T>(path, { signal, params: query }).then((r) => r.data);

export interface LotQuery {
  status?: string;
  created_from?: string;
  created_to?: string;
  product?: string;
  q?: string;
  limit: number;
  offset: number;
}

export const endpoints = {
  lots: (query: LotQuery, signal?: AbortSignal) => get<Page<Lot>>("/lots", signal, params({ ...query })),
  lot: (lotNumber: string, signal?: AbortSignal) => get<Lot>(`/lots/${encodeURIComponent(lotNumber)}`, signal),
  lotHistory: (lotNumber: string, query: HistoryQuery, signal?: AbortSignal) =>
    get<LotHistory>(`/lots/${encodeURIComponent(lotNumber)}/history`, signal, params({ ...query })),
  lotUnits: (lotNumber: string, signal?: AbortSignal) =>
    get<Unit[]>(`/lots/${encodeURIComponent(lotNumber)}/units`, signal, { limit: 500 }),
  unitHistory: (serial: string, query: HistoryQuery, signal?: AbortSignal) =>
    get<UnitHistory>(`/units/${encodeURIComponent(serial)}/history`, signal, params({ ...query })),
  addUnits: (lotNumber: string, serialNumbers: string[]) =>
    api.http.post<Unit[]>(`/lots/${encodeURIComponent(lotNumber)}/units`, { serial_numbers: serialNumbers })
      .then((r) => r.data),
  createLot: (body: { lot_number: string; product: string; quantity: number; note?: string }) =>
    api.http.post<Lot>("/lots", body).then((r) => r.data),
  updateLot: (lotNumber: string,
              body: { status?: LotStatus; note?: string; quantity?: number; reason?: string }) =>
    api.http.patch<Lot>(`/lots/${encodeURIComponent(lotNumber)}`, body).then((r) => r.data),
  /** Store the logged-in user's dashboard language with the user (`PATCH /auth/me`). */
  saveLanguage: (language: "en" | "ko") =>
    api.http.patch<{ name: string; language: "en" | "ko" }>("/auth/me", { language }).then((r) => r.data),
  panels: (signal?: AbortSignal) => get<Panel[]>("/dashboard/panels", signal),
  summary: (signal?: AbortSignal) => get<Summary>("/dashboard/summary", signal),
  alerts: (includeResolved: boolean, signal?: AbortSignal) =>
    get<AlertList>("/alerts", signal, params({ include_resolved: includeResolved || undefined })),
  health: (signal?: AbortSignal) =>
    // 503 still carries the tree: a critical component is down, which is what the page must show.
    api.http.get<HealthTree>("/health", { signal, validateStatus: (s) => s === 200 || s === 503 })
      .then((r) => r.data),
  breakers: (signal?: AbortSignal) => get<Record<string, BreakerState>>("/health/circuit-breakers", signal),
  plugins: (signal?: AbortSignal) => get<{ safe_mode: boolean; plugins: PluginRecord[] }>("/plugins", signal),
  stations: (signal?: AbortSignal) => get<Station[]>("/stations", signal),
  devices: (signal?: AbortSignal) => get<Device[]>("/devices", signal),
  audit: (query: { entity?: string; actor?: string; action?: string; limit: number; offset: number },
          signal?: AbortSignal) => get<Page<AuditEntry>>("/audit", signal, params({ ...query })),
  kpiOee: (query: KpiQuery & { bucket?: OeeBucketSize }, signal?: AbortSignal) =>
    get<Oee>("/kpi/oee", signal, params({ ...query })),
  kpiYield: (query: KpiQuery & { group_by: YieldGroup }, signal?: AbortSignal) =>
    get<YieldAnswer>("/kpi/yield", signal, params({ ...query })),
  kpiPareto: (query: KpiQuery, signal?: AbortSignal) => get<Pareto>("/kpi/pareto", signal, params({ ...query })),
  kpiOutput: (query: KpiQuery & { bucket: OutputBucket }, signal?: AbortSignal) =>
    get<Output>("/kpi/output", signal, params({ ...query })),
  kpiDrillDown: (query: KpiQuery & { kind: DrillKind; key?: string; outcome?: DrillOutcome; limit?: number;
                                     cursor?: string }, signal?: AbortSignal) =>
    get<DrillDown>("/kpi/drilldown", signal, params({ ...query })),
  linesNow: (signal?: AbortSignal) => get<LinesNow>("/kpi/lines/now", signal),
  shiftCalendar: (line: string, signal?: AbortSignal) =>
    get<ShiftCalendar>(`/lines/${encodeURIComponent(line)}/shifts`, signal),
  /** A new calendar version; answers as `shiftCalendar`. 422 `SHIFTS_OVERLAP` / `INVALID_EFFECTIVE_FROM` /
   *  `VALIDATION_ERROR` (`errors[].loc`), 403 `FORBIDDEN` for a date before today without `shifts:backdate`. */
  saveShiftCalendar: (line: string, change: ShiftCalendarChange) =>
    api.http.put<ShiftCalendar>(`/lines/${encodeURIComponent(line)}/shifts`, change).then((r) => r.data),
  labelTemplates: (includeRetired: boolean, signal?: AbortSignal) =>
    get<LabelTemplate[]>("/labels/templates", signal, params({ include_retired: includeRetired || undefined })),
  labelTemplate: (name: string, version?: number, signal?: AbortSignal) =>
    get<LabelTemplate>(`/labels/templates/${encodeURIComponent(name)}`, signal, params({ version })),
  labelTemplateVersions: (name: string, signal?: AbortSignal) =>
    get<LabelTemplate[]>(`/labels/templates/${encodeURIComponent(name)}/versions`, signal),
  /** Pasted ZPL goes as JSON; a picked file as multipart, its bytes untouched (a `^GFB` binary logo too). */
  uploadLabelTemplate: (upload: TemplateUpload, file?: File) => {
    if (!file) return api.http.post<LabelTemplate>("/labels/templates", upload).then((r) => r.data);
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("name", upload.name);
    form.append("fields", JSON.stringify(upload.fields));
    form.append("title", upload.title ?? "");
    form.append("description", upload.description ?? "");
    if (upload.dpi) form.append("dpi", String(upload.dpi));
    return api.http.post<LabelTemplate>("/labels/templates", form).then((r) => r.data);
  },
  /** What the kernel reads in a ZPL file (its ^FN fields, placeholders, size), before it is saved. */
  inspectLabelZpl: (zpl: string, signal?: AbortSignal) =>
    api.http.post<ZplInspection>("/labels/templates/inspect", { zpl }, { signal }).then((r) => r.data),
  retireLabelTemplate: (name: string, reason: string) =>
    api.http.post<LabelTemplate>(`/labels/templates/${encodeURIComponent(name)}/retire`,
                                 { reason: reason || null }).then((r) => r.data),
  /** The server's PNG of a version filled with sample values, as a `data:` URL (the CSP allows no `blob:`). */
  labelPreviewPng: async (name: string, version: number, signal?: AbortSignal) => {
    const r = await api.http.post<ArrayBuffer>("/labels/preview", { template: name, template_version: version,
                                                                    sample: true }, {
      signal, responseType: "arraybuffer", headers: { Accept: "image/png" } });
    return `data:image/png;base64,${base64Of(new Uint8Array(r.data))}`;
  },
  /** The same label's filled ZPL, exactly as a print would send it, for the in-browser renderer. */
  labelPreviewZpl: (name: string, version: number, signal?: AbortSignal) =>
    api.http.post<string>("/labels/preview", { template: name, template_version: version, sample: true,
                                               format: "zpl" }, {
      signal, responseType: "text", headers: { Accept: "text/plain" } }).then((r) => r.data),
};

/** Base64 of bytes, in slices (a spread of a whole PNG would overflow the argument limit). */
export function base64Of(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
