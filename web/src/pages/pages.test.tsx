// Pages against a fake kernel over HTTP: generic panels, LOT list and create, status change, health.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Lot, Panel } from "../api/types";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import { DevicesPage, deviceHealth, heartbeatAge } from "./DevicesPage";
import { LotDetailPage, parseSerials } from "./LotDetailPage";
import { dayStart, LotsPage, useLotFilters } from "./LotsPage";
import { usePlant } from "../i18n/format";
import { OverviewPage, orderPanels } from "./OverviewPage";
import { AuditPage, changeOf } from "./AuditPage";

let kernel: FakeKernel;

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  useLotFilters.setState({ status: "", from: "", to: "", product: "", q: "", pageIndex: 0, pageSize: 25 });
});

afterEach(async () => {
  logoutLocally();
  await kernel.close();
});

function lot(lotNumber: string, status: Lot["status"] = "created"): Lot {
  return { id: 1, lot_number: lotNumber, product: "NH-1", quantity: 10, status, note: "",
           created_at: "2026-11-26T05:00:00Z", updated_at: "2026-11-26T05:00:00Z", closed_at: null, unit_count: 0 };
}

const PANELS: Panel[] = [
  { plugin: "dashboard_kpi", id: "alerts", title: "Open alerts", kind: "table", endpoint: "/api/v1/alerts",
    refresh_seconds: 30, options: { items: "items", columns: [{ key: "message", title: "Message" }] } },
  { plugin: "dashboard_kpi", id: "yield", title: "First-pass yield today", kind: "stat",
    endpoint: "/api/v1/dashboard/kpi/yield", refresh_seconds: 10,
    options: { value: "value", format: "percent", caption: "{first_pass} of {first_attempts} first tries" } },
  { plugin: "third_party", id: "scrap", title: "Scrap (kg)", kind: "stat", endpoint: "scrap/today",
    refresh_seconds: 60, options: {} },
];

describe("OverviewPage", () => {
  it("draws every declared panel from its own endpoint, without plugin code", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: PANELS }));
    kernel.route("GET", "/api/v1/dashboard/kpi/yield", () => ({ body: { value: 0.9, first_pass: 9, first_attempts: 10 } }));
    kernel.route("GET", "/api/v1/scrap/today", () => ({ body: { value: 12.5 } }));
    kernel.route("GET", "/api/v1/alerts", () => ({ body: { items: [{ message: "printer PRN-01 out of paper" }] } }));
    render(<OverviewPage />);
    const yieldPanel = await screen.findByTestId("panel-yield");
    await within(yieldPanel).findByText("90.0%");
    expect(within(yieldPanel).getByText("9 of 10 first tries")).toBeInTheDocument();
    await within(screen.getByTestId("panel-scrap")).findByText("12.5");
    await within(screen.getByTestId("panel-alerts")).findByRole("cell", { name: "printer PRN-01 out of paper" });
    expect(kernel.seen.find((s) => s.path === "/api/v1/scrap/today")?.authorization).toBe("Bearer access-viewer");
  });

  it("says the summary is missing when the KPI plugin is not there, and still shows panels", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [PANELS[2]] }));
    kernel.route("GET", "/api/v1/scrap/today", () => ({ body: { value: 3 } }));
    render(<OverviewPage />);
    expect(await screen.findByText(/KPI summary is not available/)).toBeInTheDocument();
    await within(await screen.findByTestId("panel-scrap")).findByText("3");
  });

  it("shows the summary's KPIs", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [] }));
    kernel.route("GET", "/api/v1/dashboard/summary", () => ({ body: {
      generated_at: "2026-11-26T05:00:00Z", timezone: "UTC",
      lots: { by_status: { created: 2, in_progress: 3, on_hold: 1 }, total: 6, closed_today: 4 },
      records_today: { total: 10, pass: 8, fail: 2, first_attempts: 10, first_pass: 8, first_pass_yield: 0.8 },
      stations: { total: 3, online: 2, silent: 1, never_seen: 0 },
      devices: { total: 0, enabled: 0, by_kind: {} },
      alerts: { open: 2, open_by_severity: { critical: 1, warning: 1 } },
    } }));
    render(<OverviewPage />);
    expect(await screen.findByTestId("kpi-Active LOTs")).toHaveTextContent("5");
    expect(screen.getByTestId("kpi-First-pass yield")).toHaveTextContent("80.0%");
    expect(screen.getByTestId("kpi-Stations online")).toHaveTextContent("2 / 3");
    expect(screen.getByText("1 critical · 1 warning")).toBeInTheDocument();
  });

  it("leaves out a panel whose data this role may not read", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: PANELS.slice(1) }));
    kernel.route("GET", "/api/v1/dashboard/kpi/yield", () => ({ body: { value: 1, first_pass: 1, first_attempts: 1 } }));
    kernel.route("GET", "/api/v1/scrap/today", () => ({
      status: 403, body: { detail: { code: "FORBIDDEN", message: "viewer may not do this (needs scrap:read)" } },
    }));
    render(<OverviewPage />);
    await within(await screen.findByTestId("panel-yield")).findByText("100.0%");
    await waitFor(() => expect(kernel.seen.some((s) => s.path === "/api/v1/scrap/today")).toBe(true));
    await waitFor(() => expect(screen.queryByTestId("panel-scrap")).toBeNull());
  });

  it("shows nested values of a table panel as JSON, next to the other panels", async () => {
    loginAs("viewer");
    const broken: Panel = { plugin: "third_party", id: "broken", title: "Broken", kind: "table",
                            endpoint: "/broken", refresh_seconds: 60, options: { columns: [{ key: "a", title: "A" }] } };
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [broken, PANELS[2]] }));
    kernel.route("GET", "/api/v1/broken", () => ({ body: { items: [{ a: { nested: 1 } }] } }));
    kernel.route("GET", "/api/v1/scrap/today", () => ({ body: { value: 3 } }));
    render(<OverviewPage />);
    await within(await screen.findByTestId("panel-scrap")).findByText("3");
    await within(screen.getByTestId("panel-broken")).findByRole("cell", { name: '{"nested":1}' });
  });

  it("orders numbers before charts before tables", () => {
    expect(orderPanels(PANELS).map((p) => p.id)).toEqual(["yield", "scrap", "alerts"]);
  });
});

describe("LotsPage", () => {
  beforeEach(() => {
    kernel.route("GET", "/api/v1/lots", (req) => {
      const all = [lot("LOT-A"), lot("LOT-B", "on_hold")];
      const items = all.filter((l) => (!req.query.get("status") || l.status === req.query.get("status")) &&
                                      (!req.query.get("q") || l.lot_number.includes(req.query.get("q") ?? "")));
      return { body: { items, total: items.length, limit: Number(req.query.get("limit")),
                       offset: Number(req.query.get("offset")) } };
    });
  });

  it("lets a viewer read but not create LOTs", async () => {
    loginAs("viewer");
    render(<LotsPage />);
    expect(await screen.findByRole("cell", { name: "LOT-A" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "New LOT" })).toBeNull();
  });

  it("filters and searches on the server, and pages with limit and offset", async () => {
    loginAs("viewer");
    render(<LotsPage />);
    await screen.findByRole("cell", { name: "LOT-A" });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Search LOTs"), "B");
    await waitFor(() => expect(screen.queryByRole("cell", { name: "LOT-A" })).toBeNull());
    expect(screen.getByRole("cell", { name: "LOT-B" })).toBeInTheDocument();
    const last = kernel.seen.filter((s) => s.path === "/api/v1/lots").at(-1);
    expect(Object.fromEntries(last?.query ?? [])).toEqual({ q: "B", limit: "25", offset: "0" });
  });

  it("sends a created-date range as the plant's day bounds, in the plant's zone", async () => {
    loginAs("viewer");
    usePlant.setState({ timeZone: "Asia/Seoul" });
    useLotFilters.setState({ from: "2026-11-01", to: "2026-11-30" });
    render(<LotsPage />);
    await screen.findByRole("cell", { name: "LOT-A" });
    const query = kernel.seen.filter((s) => s.path === "/api/v1/lots").at(-1)?.query;
    expect(query?.get("created_from")).toBe("2026-11-01T00:00:00+09:00");
    expect(query?.get("created_to")).toBe("2026-12-01T00:00:00+09:00");
    expect(dayStart("")).toBe("");
    usePlant.setState({ timeZone: "UTC" });
  });

  it("creates a LOT for a production manager and says so", async () => {
    loginAs("production_manager");
    kernel.route("POST", "/api/v1/lots", (req) => ({ status: 201, body: { ...lot("LOT-NEW"), ...(req.body as object) } }));
    render(<LotsPage />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "New LOT" }));
    const form = screen.getByRole("form", { name: "New LOT" });
    await user.type(within(form).getByLabelText(/LOT number/), "LOT-NEW");
    await user.type(within(form).getByLabelText(/Product/), "NH-9");
    await user.clear(within(form).getByLabelText(/Quantity/));
    await user.type(within(form).getByLabelText(/Quantity/), "50");
    await user.click(within(form).getByRole("button", { name: "Create" }));
    expect(await screen.findByText(/LOT created:/)).toHaveTextContent("LOT created: LOT-NEW");
    const post = kernel.seen.find((s) => s.method === "POST");
    expect(post?.body).toEqual({ lot_number: "LOT-NEW", product: "NH-9", quantity: 50, note: "" });
  });

  it("shows the kernel's reason when a LOT cannot be created", async () => {
    loginAs("production_manager");
    kernel.route("POST", "/api/v1/lots", () => ({
      status: 409, body: { detail: { code: "LOT_EXISTS", message: "LOT LOT-A already exists" } },
    }));
    render(<LotsPage />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "New LOT" }));
    const form = screen.getByRole("form", { name: "New LOT" });
    await user.type(within(form).getByLabelText(/LOT number/), "LOT-A");
    await user.type(within(form).getByLabelText(/Product/), "NH-9");
    await user.click(within(form).getByRole("button", { name: "Create" }));
    expect(await within(form).findByRole("alert")).toHaveTextContent("LOT LOT-A already exists");
  });
});

describe("LotDetailPage", () => {
  beforeEach(() => {
    let status: Lot["status"] = "in_progress";
    kernel.route("GET", "/api/v1/lots/LOT%2F7", () => ({ body: lot("LOT/7", status) }));
    kernel.route("GET", "/api/v1/lots/LOT%2F7/units", () => ({ body: [] }));
    kernel.route("GET", "/api/v1/lots/LOT%2F7/history", () => ({ body: { lot_number: "LOT/7", status, events: [
      { at: "2026-11-26T05:00:00Z", type: "device_action", lot_number: "LOT/7", serial_number: "SN-9",
        data: { action: "print", plugin: "label_printer", device: "PRN-01", driver: "zpl_tcp", driver_version: "0.1.0",
                actor: "station:ST-01", outcome: "ok" } },
    ] } }));
    kernel.route("PATCH", "/api/v1/lots/LOT%2F7", (req) => {
      status = (req.body as { status: Lot["status"] }).status;
      return { body: lot("LOT/7", status) };
    });
  });

  it("shows who did what with which driver, and changes the status for a manager", async () => {
    loginAs("production_manager");
    render(<LotDetailPage lotNumber="LOT/7" />);
    expect(await screen.findByRole("cell", { name: "label_printer print on PRN-01 via zpl_tcp 0.1.0: ok" }))
      .toBeInTheDocument();
    expect(screen.getByRole("cell", { name: "station ST-01" })).toBeInTheDocument(); // the API's station:ST-01
    const user = userEvent.setup();
    await user.click(screen.getByLabelText("New status"));
    const options = screen.getAllByRole("option").map((o) => o.textContent);
    expect(options).toEqual(["on hold", "closed", "scrapped"]); // in progress → never back to created
    await user.click(screen.getByRole("option", { name: "on hold" }));
    await user.type(screen.getByLabelText("Reason (shown in the history)"), "paste expired ");
    await user.click(screen.getByRole("button", { name: "Change status" }));
    await waitFor(() => expect(screen.getByTestId("lot-status")).toHaveTextContent("on hold"));
    expect(kernel.seen.find((s) => s.method === "PATCH")?.body).toEqual({ status: "on_hold", reason: "paste expired" });
  });

  it("registers scanned serial numbers for a manager", async () => {
    loginAs("production_manager");
    kernel.route("POST", "/api/v1/lots/LOT%2F7/units", (req) => ({
      status: 201, body: (req.body as { serial_numbers: string[] }).serial_numbers.map((sn, i) => (
        { id: i, serial_number: sn, lot_id: 1, status: "in_progress", created_at: "2026-11-26T05:00:00Z" })),
    }));
    render(<LotDetailPage lotNumber="LOT/7" />);
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Register serial numbers"), "SN-1{Enter}SN-2{Enter}SN-1");
    await user.click(screen.getByRole("button", { name: "Register 2" }));
    expect(await screen.findByText("2 units registered.")).toBeInTheDocument();
    expect(kernel.seen.find((s) => s.method === "POST")?.body).toEqual({ serial_numbers: ["SN-1", "SN-2"] });
    expect(parseSerials(" A, B;C\n\nA ")).toEqual(["A", "B", "C"]);
  });

  it("offers no status change to a viewer", async () => {
    loginAs("viewer");
    render(<LotDetailPage lotNumber="LOT/7" />);
    await screen.findByTestId("lot-status");
    expect(screen.queryByRole("button", { name: "Change status" })).toBeNull();
    expect(screen.queryByLabelText("Register serial numbers")).toBeNull();
  });
});

describe("DevicesPage", () => {
  it("lists plugins with state and reason, open breakers and stations with heartbeat age", async () => {
    loginAs("production_manager");
    const beat = new Date(Date.now() - 95_000).toISOString();
    kernel.route("GET", "/api/v1/health", () => ({ status: 503, body: {
      status: "DOWN", timestamp: beat, critical_down: ["database"],
      components: {
        kernel: { status: "DOWN", checks: { database: { status: "DOWN", critical: true, reason: "connection refused" } } },
        plugins: { status: "UP", checks: {} },
        breakers: { status: "DEGRADED", checks: {} },
        stations: { status: "UP", checks: { "ST-01": { status: "UP", reason: null } } },
      },
    } }));
    kernel.route("GET", "/api/v1/health/circuit-breakers", () => ({ body: {
      "label_printer:PRN-01": { state: "open", failure_count: 3, failure_threshold: 3, recovery_timeout: 30,
                                last_failure: beat, last_failure_reason: "ConnectionRefusedError: [Errno 111] refused",
                                opened_at: beat,
                                opens: 1 },
    } }));
    kernel.route("GET", "/api/v1/plugins", () => ({ body: { safe_mode: false, plugins: [
      { name: "acme_printer", distribution: "acme-printer", version: "2.0", state: "incompatible",
        reason: "needs kernel API >=2,<3", kernel_api: ">=2,<3" },
    ] } }));
    kernel.route("GET", "/api/v1/stations", () => ({ body: [
      { id: 1, code: "ST-01", name: "Bench 1", line: "LINE-A", last_heartbeat_at: beat,
        heartbeat: { outbox_depth: 4, agent_version: "0.1.0" } },
    ] }));
    render(<DevicesPage />);
    expect(await screen.findByRole("cell", { name: "needs kernel API >=2,<3" })).toBeInTheDocument();
    expect(await within(screen.getByRole("table", { name: "Kernel checks" }))
      .findByRole("cell", { name: "connection refused" })).toBeInTheDocument();
    expect(screen.getByTestId("health-overall")).toHaveTextContent("DOWN");
    // the kind of failure worded; the driver's own words on hover
    expect(await screen.findByTitle("ConnectionRefusedError: [Errno 111] refused")).toHaveTextContent(
      /^connection refused$/);
    const station = (await screen.findByRole("cell", { name: "ST-01" })).closest("tr") as HTMLElement;
    expect(station).toHaveTextContent("1 min");
    expect(station).toHaveTextContent("LINE-A");
  });

  it("finds each device's health wherever its plugin reports it", () => {
    const tree = { status: "DEGRADED", timestamp: "", components: {
      kernel: { status: "UP", checks: {} },
      plugins: { status: "DEGRADED", checks: {
        label_printer: { status: "DEGRADED", checks: { printers: { status: "DOWN", reason: "PRN-01 down", details: {
          printers: { "PRN-01": { driver: "zpl_tcp", status: "DOWN", reason: "connection refused",
                                  reason_code: "PRINTER_ERROR",
                                  reason_params: { error: "PrinterConnectionError: connection refused" } } } } } } },
        firmware_uploader: { status: "UP", checks: { devices: { status: "UP", checks: {
          "FW-01": { status: "UP", reason: null } } } } },
      } },
      breakers: { status: "UP", checks: {} },
      stations: { status: "UP", checks: {} },
    } } as never;
    expect(deviceHealth(tree, "PRN-01")).toEqual({ status: "DOWN", reason: "connection refused",
      reason_code: "PRINTER_ERROR", reason_params: { error: "PrinterConnectionError: connection refused" } });
    // a kernel before reason codes: the English alone
    expect(deviceHealth(tree, "FW-01")).toEqual({ status: "UP", reason: null, reason_code: null, reason_params: null });
    expect(deviceHealth(tree, "SCN-9")).toBeUndefined();
  });

  it("computes heartbeat age from the last heartbeat", () => {
    const station = { id: 1, code: "S", name: "", line: null, heartbeat: {},
                      last_heartbeat_at: "2026-11-26T05:00:00Z" };
    expect(heartbeatAge(station, Date.parse("2026-11-26T05:02:00Z"))).toBe(120);
    expect(heartbeatAge({ ...station, last_heartbeat_at: null })).toBeNull();
  });
});

describe("AuditPage", () => {
  it("lists entries with what changed, filtered on the server", async () => {
    loginAs("admin");
    kernel.route("GET", "/api/v1/audit", (req) => ({ body: {
      items: req.query.get("entity") === "user" ? [] : [
        { id: 2, occurred_at: "2026-11-26T05:00:00Z", actor: "user:boss", action: "update", entity: "lot",
          entity_id: "LOT-A", before: { status: "created" }, after: { status: "on_hold" }, request_id: null,
          client_ip: "127.0.0.1", row_hash: "x" },
      ], total: 1, limit: 25, offset: 0 } }));
    render(<AuditPage />);
    expect(await screen.findByRole("cell", { name: "status: created → on_hold" })).toBeInTheDocument();
    await userEvent.setup().type(screen.getByLabelText("Entity"), "user");
    await waitFor(() => expect(screen.queryByRole("cell", { name: "LOT-A" })).toBeNull());
    expect(kernel.seen.at(-1)?.query.get("entity")).toBe("user");
  });

  it("describes creations and updates", () => {
    expect(changeOf({ before: null, after: { lot_number: "L", quantity: 5 } })).toBe("lot_number=L, quantity=5");
    expect(changeOf({ before: { a: 1, b: 2 }, after: { a: 1, b: 3 } })).toBe("b: 2 → 3");
  });
});
