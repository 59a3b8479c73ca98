// Shapes of the kernel's and plugins' JSON answers that the dashboard reads.

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  role: string;
}

export interface Me {
  kind: "user" | "station";
  name: string;
  role: string;
  station: string | null;
  /** The dashboard language the user chose, stored with the user; null until chosen (and for a station). */
  language?: "en" | "ko" | null;
  permissions: string[];
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export type LotStatus = "created" | "in_progress" | "on_hold" | "closed" | "scrapped";

export interface Lot {
  id: number;
  lot_number: string;
  product: string;
  quantity: number;
  status: LotStatus;
  note: string;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  unit_count: number | null;
}

export interface Unit {
  id: number;
  serial_number: string;
  lot_id: number;
  status: string;
  created_at: string;
}

/** What a history event is: a process result, a device action (print, flash, scan lookup), a station
 *  scan, a LOT status change (creation included, with who and why) or a unit registration. */
export type HistoryKind = "process_record" | "device_action" | "scan" | "status_change" | "registration";

export interface HistoryEvent {
  /** The event's id in the kernel's trace stream (absent from kernels before issue 12). */
  id?: number;
  at: string;
  /** When it happened at the station (the station's clock); absent from kernels before issue 13. */
  recorded_at?: string | null;
  /** When the server received it. */
  received_at?: string | null;
  type: HistoryKind;
  /** The station outbox's sequence number: orders one station's events of the same moment. */
  seq?: number | null;
  /** The code of the station it happened at. */
  station?: string | null;
  actor?: string;
  lot_number: string | null;
  serial_number: string | null;
  data: Record<string, unknown>;
}

export interface LotHistory extends HistoryPage {
  lot_number: string;
  status: LotStatus;
  events: HistoryEvent[];
}

export interface UnitHistory extends HistoryPage {
  serial_number: string;
  lot_number: string;
  lot_status: LotStatus;
  product: string;
  events: HistoryEvent[];
}

export type PanelKind = "stat" | "timeseries" | "bar" | "table";

export interface Panel {
  plugin: string;
  id: string;
  title: string;
  kind: PanelKind;
  endpoint: string;
  refresh_seconds: number;
  options: Record<string, unknown>;
  /** language ("ko") → {English text: translated text} for the title, caption, series and columns */
  translations?: Record<string, Record<string, string>>;
}

export type HealthStatus = "UP" | "DEGRADED" | "DOWN";

export interface CheckNode {
  status: HealthStatus;
  critical?: boolean;
  /** English, for logs and API users; the dashboard words `reason_code` with `reason_params` (without a code: this). */
  reason?: string | null;
  reason_code?: string | null;
  reason_params?: Record<string, unknown> | null;
  details?: Record<string, unknown>;
  duration_ms?: number;
}

export interface HealthGroup {
  status: HealthStatus;
  checks: Record<string, CheckNode>;
}

export interface HealthTree {
  status: HealthStatus;
  timestamp: string;
  critical_down?: string[];
  version?: string;
  components: {
    kernel: HealthGroup;
    plugins: { status: HealthStatus; checks: Record<string, HealthGroup> };
    breakers: HealthGroup;
    stations: HealthGroup;
  };
}

export interface BreakerState {
  state: "closed" | "open" | "half_open" | string;
  failure_count: number;
  failure_threshold: number | null;
  recovery_timeout: number | null;
  last_failure: string | null;
  last_failure_reason: string | null;
  opened_at: string | null;
  opens: number;
}

export interface PluginRecord {
  name: string;
  distribution: string | null;
  version: string | null;
  state: "loaded" | "disabled" | "incompatible" | "failed" | string;
  /** English, for logs; the dashboard words `reason_code` with `reason_params` (a kernel before them: this). */
  reason: string | null;
  reason_code?: string | null;
  reason_params?: Record<string, unknown>;
  kernel_api: string | null;
  bundled?: boolean;
  routes?: string[];
  drivers?: { kind: string; name: string; package: string; version: string }[];
  breakers?: string[];
  panels?: string[];
  health_checks?: string[];
  permissions?: string[];
}

export interface Station {
  id: number;
  code: string;
  name: string;
  line: string | null;
  last_heartbeat_at: string | null;
  heartbeat: Record<string, unknown>;
}

export interface Alert {
  id: number;
  key: string;
  severity: string;
  source: string;
  message: string;
  detail: Record<string, unknown> | null;
  raised_at: string;
  resolved_at: string | null;
  open: boolean;
}

export interface AlertList {
  items: Alert[];
  open: number;
  open_by_severity: Record<string, number>;
}

export interface AuditEntry {
  id: number;
  occurred_at: string;
  actor: string;
  action: string;
  entity: string;
  entity_id: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  request_id: string | null;
  client_ip: string | null;
  row_hash: string;
}

export interface Summary {
  generated_at: string;
  timezone: string;
  lots: { by_status: Record<string, number>; total: number; closed_today: number };
  records_today: {
    total: number;
    pass: number;
    fail: number;
    first_attempts: number;
    first_pass: number;
    first_pass_yield: number | null;
  };
  stations: { total: number; online: number; silent: number; never_seen: number };
  devices: { total: number; enabled: number; by_kind: Record<string, number> };
  device_actions_today?: { total: number; by_outcome: Record<string, number> };
  alerts: { open: number; open_by_severity: Record<string, number> };
}

export interface Device {
  code: string;
  kind: string;
  driver: string;
  line: string | null;
  station: string | null;
  enabled: boolean;
  config: Record<string, unknown>;
}

// ---- issue 13: KPIs, views for each audience, histories by cursor ----

/** One page of a LOT's or unit's history (newest first); `next_before` is the cursor of the next page. */
export interface HistoryPage {
  total?: number;
  next_before?: string | null;
}

export interface OeeFactors {
  availability: number | null;
  performance: number | null;
  quality: number | null;
}

export interface OeeShift extends OeeFactors {
  line: string;
  shift: string;
  start: string;
  end: string;
  oee: number | null;
  computed_from?: OeeComputedFrom;
  /** The line's bottleneck step (or machine) whose parts performance counts; null when none is timed. */
  bottleneck?: string | null;
  /** Performance above 100 %: the ideal cycle time is set slower than the line runs. */
  performance_over_ideal?: boolean;
}

/** What a line's performance was computed from: its bottleneck's ideal cycle time × the parts made there. */
export interface PerformanceSource {
  line: string;
  counts_from: "records" | "machines";
  step: string | null;
  ideal_cycle_seconds: number | null;
  count: number;
  ideal_seconds: number;
}

/**
 * How OEE was obtained: the product of its factors; 0 for planned time with no output; or null
 * for want of planned time, run time or an ideal cycle time (docs/kpi.md).
 */
export type OeeComputedFrom = "factors" | "no_output" | "no_planned_time" | "no_run_time" | "no_ideal_cycle_time";

/** OEE with the figures each factor was divided from. */
export interface OeeFigures {
  oee: number | null;
  computed_from: OeeComputedFrom;
  availability: { value: number | null; planned_seconds: number; downtime_seconds: number; run_seconds: number };
  performance: {
    value: number | null; ideal_cycle_seconds_total: number; run_seconds: number; total_count: number;
    /** Above 100 %: kept, shown as a warning (the ideal cycle time is set too slow). */
    over_ideal?: boolean;
    computed_from?: PerformanceSource[];
  };
  quality: { value: number | null; good: number; total: number };
}

export type OeeBucketSize = "day" | "week";

/** One whole day or ISO 8601 week ("2026-W49") of the plant's calendar: `start` its midnight (a week's Monday
 *  00:00), `end` the next one's. A period the range cuts is `partial`: its figures count only `counted_from` to
 *  `counted_to` (a kernel before them sent neither). */
export interface PeriodBounds {
  period?: string;
  start: string;
  end?: string;
  counted_from?: string;
  counted_to?: string;
  partial?: boolean;
}

export interface OeeBucket extends OeeFigures, PeriodBounds {
  period: string;
  end: string;
}

export interface Oee extends OeeFigures {
  line: string | null;
  from: string;
  to: string;
  /** Without `bucket`. */
  shifts?: OeeShift[];
  /** With `bucket`: every period of the range, oldest first. */
  bucket?: OeeBucketSize;
  buckets?: OeeBucket[];
}

export type YieldGroup = "process" | "station" | "product";

export interface YieldItem {
  key: string;
  total: number;
  passed: number;
  first_pass: number;
  first_pass_yield: number | null;
  final_yield: number | null;
  /** Every record in the range (retests too), and how many of them passed. */
  records?: number;
  records_passed?: number;
}

export interface YieldAnswer {
  group_by: YieldGroup;
  items: YieldItem[];
}

export interface ParetoItem {
  defect_code: string;
  count: number;
  percent: number;
  cumulative_percent: number;
}

export interface Pareto {
  total: number;
  items: ParetoItem[];
}

/** What a drill-down opens: a Pareto bar (a defect code) or a yield bar. */
export type DrillKind = "defect" | YieldGroup;
/** Yield bars: every item, those that failed their first try, or those not passed in the end. */
export type DrillOutcome = "all" | "first_fail" | "failed";

export interface DrillLot {
  lot_number: string;
  product: string | null;
  /** defect: failed records with the code; yield: items of the bar in the LOT */
  count?: number;
  units?: number;
  total?: number;
  first_pass?: number;
  passed?: number;
}

export interface DrillUnit {
  /** null: a LOT-level record */
  serial_number: string | null;
  lot_number: string;
  count?: number;
  first_at?: string;
  last_at?: string;
  process?: string;
  station?: string | null;
  first_passed?: boolean;
  passed?: boolean;
  first_hour?: string;
}

/** The archived months a drill-down's range covers: their records are offline, their counts stay in the bars. */
export interface DrillArchived {
  /** `YYYY-MM` (UTC), oldest first */
  months: string[];
  /** the bar's failed records (defect) or items (yield, of the outcome asked) the lists lack for it */
  not_listed: number;
}

/** `GET /kpi/drilldown`: the LOTs and a page of units behind one bar. `count` (defect) and `total`,
 *  `first_pass`, `passed` (yield) are the bar's; `listed`, `units` and `lots` what the lists hold. */
export interface DrillDown {
  kind: DrillKind;
  key: string | null;
  from: string;
  to: string;
  line: string | null;
  totals: { count?: number; units?: number; total?: number; first_pass?: number; passed?: number;
            first_pass_yield?: number | null; final_yield?: number | null; lots: number; listed?: number };
  lots: DrillLot[];
  units: DrillUnit[];
  next_cursor: string | null;
  /** null (or absent, from an older kernel): the range covers no archived month */
  archived?: DrillArchived | null;
}

export type OutputBucket = "hour" | "day" | "week";

/** One bucket's output. `good` and `first_tried` are different items (a unit reworked and passing today
 *  was first tried yesterday): neither is a share of the other. */
/** One hour, day or week; a day or week with its bounds as `OeeBucket`'s (the same weeks). */
export interface OutputItem extends PeriodBounds {
  /** Items whose first pass at their line's output step falls in the bucket: what the line made. */
  good: number;
  /** Items whose first attempt at the output step falls in the bucket. */
  first_tried: number;
  plan: number | null;
}

/** The step a line's output is counted at: its configured `output_step`, else its highest-sequence step
 *  with records (`configured: false`); `line` null for records without a line. */
export interface OutputStep {
  line: string | null;
  step: string;
  configured: boolean;
}

export interface Output {
  bucket: OutputBucket;
  output_steps?: OutputStep[];
  items: OutputItem[];
}

export interface LineNow {
  line: string;
  name: string;
  current_lot: string | null;
  output: number;
  /** The step today's output is counted at (null: the line recorded nothing yet). */
  output_step?: string | null;
  plan: number | null;
  oee: number | null;
  /** Performance above 100 % today: the OEE is shown with a warning, not as a plain figure. */
  performance_over_ideal?: boolean;
  open_alerts: number;
}

export interface LinesNow {
  items: LineNow[];
}

/** A variable field of a label template: a `{{name}}` placeholder in field data, or the `^FN` number `fn`. */
export interface TemplateField {
  name: string;
  type: "text" | "lot_number" | "serial_number" | "product" | "date" | "integer" | "gtin";
  required: boolean;
  max_length: number;
  description: string;
  fn: number | null;
}

/** A `^FN` numbered field as the kernel reads it in a ZPL file (`POST /labels/templates/inspect`). */
export interface ZplFnField {
  fn: number;
  /** The designer's prompt, `^FN1"product"`. */
  prompt: string | null;
  /** The field data it prints when nothing fills it (its first `^FD`, escapes kept). */
  default: string | null;
  /** How many fields carry the number. */
  uses: number;
  /** What those fields draw: `text`, `code128`, `datamatrix`, `qr` … */
  kinds: string[];
}

/** What an upload of a ZPL file would read in it; nothing is stored. */
export interface ZplInspection {
  fn_fields: ZplFnField[];
  /** `{{name}}` placeholders, each once, in order of appearance. */
  placeholders: string[];
  width: number | null;
  height: number | null;
  graphics: number;
  warnings: string[];
}

/** A label template version (`GET /labels/templates`, `/templates/{name}`, `/versions`); sizes in dots. */
export interface LabelTemplate {
  name: string;
  version: number;
  title: string;
  description: string;
  width: number;
  height: number;
  dpi: number;
  status: "active" | "retired";
  fields: TemplateField[];
  source?: string;
  created_by?: string;
  created_at?: string | null;
  retired_at?: string | null;
  /** The ZPL as uploaded (single template answers only). */
  zpl?: string;
  /** What of a designer's export was left out and why (the upload's answer only). */
  warnings?: string[];
}

/** The upload as JSON (`POST /labels/templates`); a file goes as multipart with the same names. */
export interface TemplateUpload {
  name: string;
  zpl: string;
  fields: Omit<TemplateField, "description">[] | TemplateField[];
  title?: string;
  description?: string;
  dpi?: number;
}

/** One shift of a line's calendar (`GET/PUT /lines/{code}/shifts`): local `HH:MM` times on the plant's clock (an
 *  end at or before the start ends the next day), the weekdays it starts on (Monday = 0), the planned output of
 *  one occurrence. */
export interface Shift {
  name: string;
  start: string;
  end: string;
  days: number[];
  planned_output: number;
}

/** A calendar version: in force from `effective_from` until `until` (the next version's; null for the last). */
export interface ShiftCalendarVersion {
  effective_from: string;
  until: string | null;
  shifts: Shift[];
  updated_by: string;
  updated_at: string;
}

/** A line's calendar: the shifts in force now (from `effective_from`; empty and null before the first version)
 *  and every version, oldest first. */
export interface ShiftCalendar {
  line: string;
  timezone: string;
  effective_from: string | null;
  shifts: Shift[];
  versions: ShiftCalendarVersion[];
}

/** `PUT /lines/{code}/shifts`: `effective_from` a plant-calendar date (its midnight) or an ISO-8601 instant;
 *  absent: from the current hour. */
export interface ShiftCalendarChange {
  shifts: Shift[];
  effective_from?: string;
}
