// Devices and health: the health tree, plugins with state and reason, breakers, stations' heartbeats.
import { useMemo } from "react";
import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import { endpoints } from "../api/endpoints";
import type { BreakerState, CheckNode, Device, HealthTree, PluginRecord, Station } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, PageTitle, Section, StatusChip, Updated, useStateLabel, When } from "../components/common";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { usePolling } from "../hooks/usePolling";
import { formatDuration as formatAge, formatDuration, formatMilliseconds } from "../i18n/format";
import { checkTitle, failureText, healthReason, type HealthReason, pluginReason, pluginTitle } from "../i18n/kernelTexts";
import { useCan } from "../store/auth";

const HEALTH_INTERVAL_MS = 15_000;

interface CheckRow extends CheckNode {
  name: string;
}

const checkColumns = (t: TFunction): ColumnDef<CheckRow, any>[] => [
  { accessorKey: "name", header: t("devices.col.check"), cell: (i) => checkTitle(i.getValue(), t) },
  { accessorKey: "status", header: t("devices.col.state"), cell: (i) => <StatusChip status={i.getValue()} /> },
  { accessorKey: "critical", header: t("devices.col.critical"), cell: (i) => (i.getValue() ? t("common.yes") : t("common.no")) },
  {
    // the reason in the reader's words by its code; the kernel's English for a technician, on hover
    id: "reason", header: t("devices.col.reason"), accessorFn: (c) => healthReason(c, t),
    cell: (i) => <span title={i.row.original.reason ?? undefined}>{i.getValue()}</span>,
  },
  { accessorKey: "duration_ms", header: t("devices.col.took"), cell: (i) => (i.getValue() != null ? formatMilliseconds(i.getValue()) : "—") },
];

interface PluginRow extends PluginRecord {
  health?: string;
  healthReasons: string[];
}

const pluginColumns = (t: TFunction): ColumnDef<PluginRow, any>[] => [
  {
    accessorKey: "name", header: t("devices.col.plugin"),
    cell: (i) => {
      const title = pluginTitle(i.getValue(), t);
      return <><strong>{title}</strong>{title !== i.getValue() && <Typography variant="caption" component="div">
        {i.getValue()}</Typography>}</>;
    },
  },
  { accessorKey: "version", header: t("devices.col.version"), cell: (i) => i.getValue() ?? "—" },
  { accessorKey: "state", header: t("devices.col.state"), cell: (i) => <StatusChip status={i.getValue()} /> },
  { id: "reason", header: t("devices.col.reason"), accessorFn: (p) => pluginReason(p, t) },
  {
    accessorKey: "health", header: t("devices.col.health"),
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} /> : "—"),
  },
  {
    id: "checks", header: t("devices.col.checks"),
    accessorFn: (p) => p.healthReasons.join("; ") || (p.health_checks ?? []).map((c) => checkTitle(c, t)).join(", ") || "—",
  },
  {
    id: "drivers", header: t("devices.col.drivers"),
    accessorFn: (p) => (p.drivers ?? []).map((d) => d.name).join(", ") || "—",
  },
];

interface BreakerRow extends BreakerState {
  name: string;
}

const breakerColumns = (t: TFunction): ColumnDef<BreakerRow, any>[] => [
  { accessorKey: "name", header: t("devices.col.breaker") },
  { accessorKey: "state", header: t("devices.col.state"), cell: (i) => <StatusChip status={i.getValue()} /> },
  {
    id: "failures", header: t("devices.col.failures"),
    accessorFn: (b) => `${b.failure_count}${b.failure_threshold != null ? ` / ${b.failure_threshold}` : ""}`,
  },
  { accessorKey: "recovery_timeout", header: t("devices.col.recovery"), cell: (i) => (i.getValue() != null ? formatDuration(i.getValue()) : "—") },
  { accessorKey: "opens", header: t("devices.col.opened") },
  { accessorKey: "last_failure", header: t("devices.col.lastFailure"), cell: (i) => <When at={i.getValue()} /> },
  {
    // the kind of failure in the reader's language; the driver's own words for a technician, on hover
    accessorKey: "last_failure_reason", header: t("devices.col.reason"),
    cell: (i) => <span title={i.getValue() ?? undefined}>{failureText(i.getValue(), t)}</span>,
  },
];

interface StationRow extends Station {
  health?: CheckNode;
}

/** Seconds since the last heartbeat, from the station's own timestamp (null when never heard). */
export function heartbeatAge(station: Station, now: number = Date.now()): number | null {
  if (!station.last_heartbeat_at) return null;
  const at = new Date(station.last_heartbeat_at).getTime();
  return Number.isNaN(at) ? null : Math.max(0, (now - at) / 1000);
}

const stationColumns = (t: TFunction): ColumnDef<StationRow, any>[] => [
  { accessorKey: "code", header: t("devices.col.station"), cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "name", header: t("devices.col.name"), cell: (i) => i.getValue() || "—" },
  { accessorKey: "line", header: t("devices.col.line"), cell: (i) => i.getValue() ?? "—" },
  {
    id: "state", header: t("devices.col.state"), accessorFn: (s) => s.health?.status,
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} label={i.row.original.health?.reason
      ? `${t(`state.${i.getValue()}`, { defaultValue: i.getValue() })}: ${healthReason(i.row.original.health, t)}`
      : undefined} /> : "—"),
  },
  {
    id: "age", header: t("devices.col.heartbeatAge"), accessorFn: (s) => heartbeatAge(s),
    cell: (i) => (i.getValue() == null ? t("devices.never") : formatAge(i.getValue())),
  },
  { id: "outbox", header: t("devices.col.outbox"), accessorFn: (s) => s.heartbeat.outbox_depth ?? "—" },
  {
    id: "oldest", header: t("devices.col.oldestQueued"), accessorFn: (s) => s.heartbeat.oldest_queued_age_seconds,
    cell: (i) => (typeof i.getValue() === "number" ? formatAge(i.getValue()) : "—"),
  },
  { id: "agent", header: t("devices.col.agent"), accessorFn: (s) => s.heartbeat.agent_version ?? "—" },
  {
    id: "devices", header: t("devices.col.devices"),
    accessorFn: (s) => Object.keys((s.heartbeat.devices as Record<string, unknown> | undefined) ?? {}).join(", ") || "—",
  },
];

interface DeviceRow extends Device {
  health?: HealthReason & { status: string };
  breaker?: string;
}

/**
 * A device's health as its plugin reports it: plugins put per-device results somewhere in their
 * checks (under `checks`, or in `details` keyed by device code), so look for the code as a key
 * whose value carries a status.
 */
export function deviceHealth(tree: HealthTree | undefined, code: string): DeviceRow["health"] {
  const seen = new Set<unknown>();
  function walk(node: unknown, depth: number): DeviceRow["health"] {
    if (!node || typeof node !== "object" || depth > 8 || seen.has(node)) return undefined;
    seen.add(node);
    const record = node as Record<string, unknown>;
    const own = record[code] as Record<string, unknown> | undefined;
    if (own && typeof own === "object" && typeof own.status === "string") {
      return {
        status: own.status.toUpperCase(),
        reason: typeof own.reason === "string" ? own.reason : null,
        reason_code: typeof own.reason_code === "string" ? own.reason_code : null,
        reason_params: own.reason_params && typeof own.reason_params === "object"
          ? own.reason_params as Record<string, unknown> : null,
      };
    }
    for (const child of Object.values(record)) {
      const found = walk(child, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  return walk(tree?.components.plugins.checks, 0);
}

const deviceColumns = (t: TFunction): ColumnDef<DeviceRow, any>[] => [
  { accessorKey: "code", header: t("devices.col.device"), cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "kind", header: t("devices.col.kind") },
  { accessorKey: "driver", header: t("devices.col.driver") },
  { accessorKey: "line", header: t("devices.col.line"), cell: (i) => i.getValue() ?? "—" },
  { accessorKey: "station", header: t("devices.col.station"), cell: (i) => i.getValue() ?? "—" },
  {
    id: "health", header: t("devices.col.health"), accessorFn: (d) => d.health?.status,
    cell: (i) => (i.row.original.enabled
      ? (i.getValue() ? <StatusChip status={i.getValue()} /> : "—") : <StatusChip status="disabled" />),
  },
  {
    id: "reason", header: t("devices.col.reason"), accessorFn: (d) => healthReason(d.health, t),
    cell: (i) => <span title={i.row.original.health?.reason ?? undefined}>{i.getValue()}</span>,
  },
  {
    accessorKey: "breaker", header: t("devices.col.breaker"),
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} /> : "—"),
  },
];

export function pluginRows(plugins: PluginRecord[], health: HealthTree | undefined, t: TFunction): PluginRow[] {
  const groups = health?.components.plugins.checks ?? {};
  return plugins.map((p) => {
    const group = groups[p.name];
    const reasons = Object.entries(group?.checks ?? {})
      .filter(([, c]) => c.reason)
      .map(([name, c]) => `${checkTitle(name, t)}: ${healthReason(c, t)}`);
    return { ...p, health: group?.status, healthReasons: reasons };
  });
}

export function DevicesPage() {
  const { t } = useTranslation();
  const stateLabel = useStateLabel();
  const canPlugins = useCan("plugins:read");
  const canStations = useCan("stations:read");
  const health = usePolling("GET /health", endpoints.health, HEALTH_INTERVAL_MS);
  const breakers = usePolling("GET /health/circuit-breakers", endpoints.breakers, HEALTH_INTERVAL_MS);
  const plugins = usePolling("GET /plugins", endpoints.plugins, HEALTH_INTERVAL_MS * 4, canPlugins);
  const stations = usePolling("GET /stations", endpoints.stations, HEALTH_INTERVAL_MS, canStations);
  const canDevices = useCan("lines:read");
  const devices = usePolling("GET /devices", endpoints.devices, HEALTH_INTERVAL_MS * 2, canDevices);
  const tree = health.data;
  // made once per language: the tables render their cells as components, and new cell functions on every poll
  // would remount every cell (a tooltip open on one would close, a finder holding one would lose it)
  const columns = useMemo(() => ({ device: deviceColumns(t), check: checkColumns(t), plugin: pluginColumns(t),
                                   breaker: breakerColumns(t), station: stationColumns(t) }), [t]);

  const kernelRows: CheckRow[] = Object.entries(tree?.components.kernel.checks ?? {})
    .map(([name, c]) => ({ name, ...c }));
  const breakerRows: BreakerRow[] = Object.entries(breakers.data ?? {}).map(([name, b]) => ({ name, ...b }));
  const stationHealth = tree?.components.stations.checks ?? {};
  const deviceRows: DeviceRow[] = (devices.data ?? []).map((d) => ({
    ...d,
    health: deviceHealth(tree, d.code),
    breaker: breakerRows.find((b) => b.name.endsWith(`:${d.code}`))?.state,
  }));
  const stationRows: StationRow[] = (stations.data ?? []).map((s) => ({ ...s, health: stationHealth[s.code] }));

  return (
    <>
      <PageTitle action={<Updated at={health.updatedAt} />}>{t("nav.devices")}</PageTitle>
      <ErrorNotice error={health.error} retryInMs={health.retryInMs} what={t("devices.health")} />
      {tree && (
        <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mb: 2 }}>
          <Typography>{t("devices.overall")}</Typography>
          <span data-testid="health-overall"><StatusChip status={tree.status} /></span>
          {(["kernel", "plugins", "breakers", "stations"] as const).map((k) => (
            <StatusChip key={k} status={tree.components[k].status} label={`${t(`devices.component.${k}`)}: ${stateLabel(tree.components[k].status)}`} />
          ))}
          {tree.critical_down && tree.critical_down.length > 0 && (
            <Typography color="error">{t("devices.criticalDown", { names: tree.critical_down.join(", ") })}</Typography>
          )}
          {tree.version && <Typography variant="caption" color="text.secondary">{t("devices.kernelVersion", { version: tree.version })}</Typography>}
        </Box>
      )}
      {canDevices && (
        <Section title={t("devices.devices")}>
          <ErrorNotice error={devices.error} retryInMs={devices.retryInMs} />
          <DataTable label={t("devices.devices")} columns={columns.device} data={deviceRows} rowKey={(d) => d.code}
                     emptyText={t("devices.noDevices")} />
        </Section>
      )}
      <Section title={t("devices.kernel")}>
        <DataTable label={t("devices.kernelChecks")} columns={columns.check} data={kernelRows} rowKey={(r) => r.name} />
      </Section>
      {canPlugins && (
        <Section title={t("devices.plugins")}>
          <ErrorNotice error={plugins.error} retryInMs={plugins.retryInMs} />
          {plugins.data?.safe_mode && (
            <Typography color="warning.dark" sx={{ mb: 1 }}>{t("devices.safeMode")}</Typography>
          )}
          <DataTable label={t("devices.plugins")} columns={columns.plugin} rowKey={(p) => p.name}
                     data={pluginRows(plugins.data?.plugins ?? [], tree, t)} emptyText={t("devices.noPlugins")} />
        </Section>
      )}
      <Section title={t("devices.breakers")}>
        <ErrorNotice error={breakers.error} retryInMs={breakers.retryInMs} />
        <DataTable label={t("devices.breakers")} columns={columns.breaker} data={breakerRows} rowKey={(b) => b.name}
                   emptyText={t("devices.noBreakers")} />
      </Section>
      {canStations && (
        <Section title={t("devices.stations")}>
          <ErrorNotice error={stations.error} retryInMs={stations.retryInMs} />
          <DataTable label={t("devices.stations")} columns={columns.station} data={stationRows} rowKey={(s) => s.code}
                     emptyText={t("devices.noStations")} />
        </Section>
      )}
    </>
  );
}
