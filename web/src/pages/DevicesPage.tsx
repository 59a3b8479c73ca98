// Devices and health: the health tree, plugins with state and reason, breakers, stations' heartbeats.
import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import { endpoints } from "../api/endpoints";
import type { BreakerState, CheckNode, Device, HealthTree, PluginRecord, Station } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, PageTitle, Section, StatusChip, Updated, When } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { formatAge } from "../panels/panelData";
import { useCan } from "../store/auth";

const HEALTH_INTERVAL_MS = 15_000;

interface CheckRow extends CheckNode {
  name: string;
}

const checkColumns: ColumnDef<CheckRow, any>[] = [
  { accessorKey: "name", header: "Check" },
  { accessorKey: "status", header: "State", cell: (i) => <StatusChip status={i.getValue()} /> },
  { accessorKey: "critical", header: "Critical", cell: (i) => (i.getValue() ? "yes" : "no") },
  { accessorKey: "reason", header: "Reason", cell: (i) => i.getValue() ?? "—" },
  { accessorKey: "duration_ms", header: "Took", cell: (i) => (i.getValue() != null ? `${i.getValue()} ms` : "—") },
];

interface PluginRow extends PluginRecord {
  health?: string;
  healthReasons: string[];
}

const pluginColumns: ColumnDef<PluginRow, any>[] = [
  { accessorKey: "name", header: "Plugin", cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "version", header: "Version", cell: (i) => i.getValue() ?? "—" },
  { accessorKey: "state", header: "State", cell: (i) => <StatusChip status={i.getValue()} /> },
  { accessorKey: "reason", header: "Reason", cell: (i) => i.getValue() ?? "—" },
  {
    accessorKey: "health", header: "Health",
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} /> : "—"),
  },
  {
    id: "checks", header: "Checks",
    accessorFn: (p) => p.healthReasons.join("; ") || (p.health_checks ?? []).join(", ") || "—",
  },
  {
    id: "drivers", header: "Drivers",
    accessorFn: (p) => (p.drivers ?? []).map((d) => d.name).join(", ") || "—",
  },
];

interface BreakerRow extends BreakerState {
  name: string;
}

const breakerColumns: ColumnDef<BreakerRow, any>[] = [
  { accessorKey: "name", header: "Breaker" },
  { accessorKey: "state", header: "State", cell: (i) => <StatusChip status={i.getValue()} /> },
  {
    id: "failures", header: "Failures",
    accessorFn: (b) => `${b.failure_count}${b.failure_threshold != null ? ` / ${b.failure_threshold}` : ""}`,
  },
  { accessorKey: "recovery_timeout", header: "Recovery", cell: (i) => (i.getValue() != null ? `${i.getValue()} s` : "—") },
  { accessorKey: "opens", header: "Opened" },
  { accessorKey: "last_failure", header: "Last failure", cell: (i) => <When at={i.getValue()} /> },
  { accessorKey: "last_failure_reason", header: "Reason", cell: (i) => i.getValue() ?? "—" },
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

const stationColumns: ColumnDef<StationRow, any>[] = [
  { accessorKey: "code", header: "Station", cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "name", header: "Name", cell: (i) => i.getValue() || "—" },
  { accessorKey: "line", header: "Line", cell: (i) => i.getValue() ?? "—" },
  {
    id: "state", header: "State", accessorFn: (s) => s.health?.status,
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} label={i.row.original.health?.reason
      ? `${i.getValue()}: ${i.row.original.health.reason}` : undefined} /> : "—"),
  },
  {
    id: "age", header: "Heartbeat age", accessorFn: (s) => heartbeatAge(s),
    cell: (i) => (i.getValue() == null ? "never" : formatAge(i.getValue())),
  },
  { id: "outbox", header: "Outbox", accessorFn: (s) => s.heartbeat.outbox_depth ?? "—" },
  {
    id: "oldest", header: "Oldest queued", accessorFn: (s) => s.heartbeat.oldest_queued_age_seconds,
    cell: (i) => (typeof i.getValue() === "number" ? formatAge(i.getValue()) : "—"),
  },
  { id: "agent", header: "Agent", accessorFn: (s) => s.heartbeat.agent_version ?? "—" },
  {
    id: "devices", header: "Devices",
    accessorFn: (s) => Object.keys((s.heartbeat.devices as Record<string, unknown> | undefined) ?? {}).join(", ") || "—",
  },
];

interface DeviceRow extends Device {
  health?: { status: string; reason: string | null };
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
      return { status: own.status.toUpperCase(), reason: typeof own.reason === "string" ? own.reason : null };
    }
    for (const child of Object.values(record)) {
      const found = walk(child, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  return walk(tree?.components.plugins.checks, 0);
}

const deviceColumns: ColumnDef<DeviceRow, any>[] = [
  { accessorKey: "code", header: "Device", cell: (i) => <strong>{i.getValue()}</strong> },
  { accessorKey: "kind", header: "Kind" },
  { accessorKey: "driver", header: "Driver" },
  { accessorKey: "line", header: "Line", cell: (i) => i.getValue() ?? "—" },
  { accessorKey: "station", header: "Station", cell: (i) => i.getValue() ?? "—" },
  {
    id: "health", header: "Health", accessorFn: (d) => d.health?.status,
    cell: (i) => (i.row.original.enabled
      ? (i.getValue() ? <StatusChip status={i.getValue()} /> : "—") : <StatusChip status="disabled" />),
  },
  { id: "reason", header: "Reason", accessorFn: (d) => d.health?.reason ?? "—" },
  {
    accessorKey: "breaker", header: "Breaker",
    cell: (i) => (i.getValue() ? <StatusChip status={i.getValue()} /> : "—"),
  },
];

export function pluginRows(plugins: PluginRecord[], health?: HealthTree): PluginRow[] {
  const groups = health?.components.plugins.checks ?? {};
  return plugins.map((p) => {
    const group = groups[p.name];
    const reasons = Object.entries(group?.checks ?? {})
      .filter(([, c]) => c.reason)
      .map(([name, c]) => `${name}: ${c.reason}`);
    return { ...p, health: group?.status, healthReasons: reasons };
  });
}

export function DevicesPage() {
  const canPlugins = useCan("plugins:read");
  const canStations = useCan("stations:read");
  const health = usePolling("health", endpoints.health, HEALTH_INTERVAL_MS);
  const breakers = usePolling("breakers", endpoints.breakers, HEALTH_INTERVAL_MS);
  const plugins = usePolling("plugins", endpoints.plugins, HEALTH_INTERVAL_MS * 4, canPlugins);
  const stations = usePolling("stations", endpoints.stations, HEALTH_INTERVAL_MS, canStations);
  const canDevices = useCan("lines:read");
  const devices = usePolling("devices", endpoints.devices, HEALTH_INTERVAL_MS * 2, canDevices);
  const tree = health.data;

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
      <PageTitle action={<Updated at={health.updatedAt} />}>Devices &amp; health</PageTitle>
      <ErrorNotice error={health.error} retryInMs={health.retryInMs} what="Health" />
      {tree && (
        <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mb: 2 }}>
          <Typography>Overall</Typography>
          <span data-testid="health-overall"><StatusChip status={tree.status} /></span>
          {(["kernel", "plugins", "breakers", "stations"] as const).map((k) => (
            <StatusChip key={k} status={tree.components[k].status} label={`${k}: ${tree.components[k].status}`} />
          ))}
          {tree.critical_down && tree.critical_down.length > 0 && (
            <Typography color="error">critical down: {tree.critical_down.join(", ")}</Typography>
          )}
          {tree.version && <Typography variant="caption" color="text.secondary">kernel {tree.version}</Typography>}
        </Box>
      )}
      {canDevices && (
        <Section title="Devices">
          <ErrorNotice error={devices.error} retryInMs={devices.retryInMs} />
          <DataTable label="Devices" columns={deviceColumns} data={deviceRows} rowKey={(d) => d.code}
                     emptyText="No device configured (see `mes line apply`)" />
        </Section>
      )}
      <Section title="Kernel">
        <DataTable label="Kernel checks" columns={checkColumns} data={kernelRows} rowKey={(r) => r.name} />
      </Section>
      {canPlugins && (
        <Section title="Plugins">
          <ErrorNotice error={plugins.error} retryInMs={plugins.retryInMs} />
          {plugins.data?.safe_mode && (
            <Typography color="warning.main" sx={{ mb: 1 }}>Safe mode: third-party plugins are not loaded.</Typography>
          )}
          <DataTable label="Plugins" columns={pluginColumns} rowKey={(p) => p.name}
                     data={pluginRows(plugins.data?.plugins ?? [], tree)} emptyText="No plugin installed" />
        </Section>
      )}
      <Section title="Circuit breakers">
        <ErrorNotice error={breakers.error} retryInMs={breakers.retryInMs} />
        <DataTable label="Circuit breakers" columns={breakerColumns} data={breakerRows} rowKey={(b) => b.name}
                   emptyText="No breaker registered" />
      </Section>
      {canStations && (
        <Section title="Stations">
          <ErrorNotice error={stations.error} retryInMs={stations.retryInMs} />
          <DataTable label="Stations" columns={stationColumns} data={stationRows} rowKey={(s) => s.code}
                     emptyText="No station registered" />
        </Section>
      )}
    </>
  );
}
