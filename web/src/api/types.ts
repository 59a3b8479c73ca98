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

export interface HistoryEvent {
  at: string;
  type: "process_record" | "device_action";
  lot_number: string | null;
  serial_number: string | null;
  data: Record<string, unknown>;
}

export interface LotHistory {
  lot_number: string;
  status: LotStatus;
  events: HistoryEvent[];
}

export interface UnitHistory {
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
}

export type HealthStatus = "UP" | "DEGRADED" | "DOWN";

export interface CheckNode {
  status: HealthStatus;
  critical?: boolean;
  reason?: string | null;
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
  reason: string | null;
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
