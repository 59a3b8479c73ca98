// The views for each audience against a fake kernel answering exactly as the issue-13 HTTP contract says.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "../App";
import { useKpiRange, weeksOf } from "../components/RangeFilter";
import i18n from "../i18n";
import { usePlant } from "../i18n/format";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, me, useKernel } from "../test/session";
import { useAuth } from "../store/auth";
import { ExecutivePage } from "./ExecutivePage";
import { LotDetailPage } from "./LotDetailPage";
import { ProductionPage } from "./ProductionPage";
import { QualityPage } from "./QualityPage";
import { UnitPage } from "./UnitPage";

let kernel: FakeKernel;

const LINES_NOW = { items: [
  { line: "L1", name: "SMT line 1", current_lot: "LOT-7", output: 420, plan: 600, oee: 0.712, open_alerts: 2 },
  { line: "L2", name: "Final assembly", current_lot: null, output: 0, plan: null, oee: null, open_alerts: 0 },
] };

const OEE = {
  line: "L1", from: "2026-11-01T00:00:00+09:00", to: "2026-11-08T00:00:00+09:00", oee: 0.6,
  availability: { value: 0.8, planned_seconds: 36_000, downtime_seconds: 7_200, run_seconds: 28_800 },
  performance: { value: 0.9375, ideal_cycle_seconds_total: 27_000, run_seconds: 28_800, total_count: 1_500 },
  quality: { value: 0.8, good: 1_200, total: 1_500 },
  shifts: [],
};

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  usePlant.setState({ timeZone: "Asia/Seoul" });
  useKpiRange.setState({ from: "2026-11-01", to: "2026-11-07", line: "" });
});

afterEach(async () => {
  logoutLocally();
  usePlant.setState({ timeZone: "UTC" });
  await i18n.changeLanguage("en");
  await kernel.close();
});

const lastQuery = (path: string) => kernel.seen.filter((s) => s.path === path).at(-1)?.query;

describe("production view", () => {
  it("shows each line now: current LOT, output against plan, OEE, open alerts", async () => {
    loginAs("production_manager");
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    render(<ProductionPage />);
    const l1 = await screen.findByTestId("line-L1");
    expect(within(l1).getByRole("link", { name: "LOT-7" })).toHaveAttribute("href", "#/lots/LOT-7");
    expect(within(l1).getByTestId("output")).toHaveTextContent("420 of 600");
    expect(within(l1).getByTestId("oee")).toHaveTextContent("71.2%");
    expect(within(l1).getByTestId("open-alerts")).toHaveTextContent("2");
    expect(within(l1).getByRole("progressbar", { name: "70.0% of plan" })).toBeInTheDocument();
    const l2 = screen.getByTestId("line-L2");
    expect(within(l2).getByTestId("oee")).toHaveTextContent("—");
    expect(within(l2).getByText(/none/)).toBeInTheDocument();
  });

  it("warns instead of showing a plain OEE over 100 % when performance is faster than ideal", async () => {
    loginAs("production_manager");
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: { items: [
      { ...LINES_NOW.items[0], oee: 5.0259, performance_over_ideal: true }, LINES_NOW.items[1]] } }));
    render(<ProductionPage />);
    const l1 = await screen.findByTestId("line-L1");
    expect(within(l1).getByTestId("oee")).toHaveTextContent("502.6% ⚠");
    expect(within(l1).getByTestId("oee-warning")).toHaveTextContent(/ideal cycle time is set slower/);
    expect(within(screen.getByTestId("line-L2")).queryByTestId("oee-warning")).toBeNull();
  });

  it("says the view is not available when this kernel has no KPI endpoints", async () => {
    loginAs("production_manager");
    render(<ProductionPage />);
    expect(await screen.findByTestId("not-available")).toHaveTextContent(/Not available/);
  });
});

describe("quality view", () => {
  beforeEach(() => {
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/pareto", () => ({ body: { total: 10, items: [
      { defect_code: "SOLDER", count: 7, percent: 70, cumulative_percent: 70 },
      { defect_code: "SCRATCH", count: 3, percent: 30, cumulative_percent: 100 },
    ] } }));
    kernel.route("GET", "/api/v1/kpi/yield", (req) => ({ body: {
      group_by: req.query.get("group_by"),
      items: [{ key: req.query.get("group_by") === "product" ? "NH-1" : "ICT", total: 200, passed: 190,
                first_pass: 180, first_pass_yield: 0.9, final_yield: 0.95 }],
    } }));
  });

  it("asks for the chosen range in the plant's zone and shows the Pareto with cumulative percent", async () => {
    loginAs("quality_manager");
    render(<QualityPage />);
    const pareto = await screen.findByRole("table", { name: "Defect Pareto" });
    const solder = within(pareto).getByRole("cell", { name: "SOLDER" }).closest("tr") as HTMLElement;
    expect(solder).toHaveTextContent("770.0%70.0%");
    expect(Object.fromEntries(lastQuery("/api/v1/kpi/pareto") ?? [])).toEqual({
      from: "2026-11-01T00:00:00+09:00", to: "2026-11-08T00:00:00+09:00", tz: "Asia/Seoul",
    });
  });

  it("groups yield by process, station or product and drills down to the LOTs behind a bar", async () => {
    loginAs("quality_manager");
    render(<QualityPage />);
    const table = await screen.findByRole("table", { name: "Yield" });
    expect(within(table).getByRole("cell", { name: "ICT" }).closest("tr")).toHaveTextContent("90.0%95.0%");
    await userEvent.setup().click(screen.getByRole("button", { name: "Product" }));
    // the table is drawn again for the new grouping: wait for the link, wherever the table stands now
    const link = await screen.findByRole("link", { name: "NH-1" });
    expect(within(await screen.findByRole("table", { name: "Yield" })).getByRole("link", { name: "NH-1" })).toBe(link);
    expect(lastQuery("/api/v1/kpi/yield")?.get("group_by")).toBe("product");
    expect(link).toHaveAttribute("href", "#/lots?from=2026-11-01&to=2026-11-07&product=NH-1");
  });

  it("filters by line and refuses a reversed range before asking the server", async () => {
    loginAs("quality_manager");
    useKpiRange.setState({ line: "L1" });
    render(<QualityPage />);
    await screen.findByRole("table", { name: "Defect Pareto" });
    expect(lastQuery("/api/v1/kpi/pareto")?.get("line")).toBe("L1");
    useKpiRange.setState({ from: "2026-11-09", to: "2026-11-01" });
    expect(await screen.findByText("The end comes before the start.")).toBeInTheDocument();
    expect(screen.queryByRole("table", { name: "Defect Pareto" })).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 200)); // a request it wrongly sent would have landed
    expect(kernel.seen.filter((s) => s.query.get("from")?.startsWith("2026-11-09"))).toEqual([]);
  });

  it("says no data when every count is zero instead of drawing an empty chart", async () => {
    loginAs("quality_manager");
    kernel.route("GET", "/api/v1/kpi/pareto", () => ({ body: { total: 0, items: [] } }));
    kernel.route("GET", "/api/v1/kpi/yield", () => ({ body: { group_by: "process", items: [
      { key: "ICT", total: 0, passed: 0, first_pass: 0, first_pass_yield: null, final_yield: null }] } }));
    render(<QualityPage />);
    await waitFor(() => expect(screen.getAllByTestId("no-data")).toHaveLength(2));
    expect(screen.queryByRole("table", { name: "Yield" })).toBeNull();
  });
});

describe("executive view", () => {
  it("shows OEE with the figures behind each factor and weekly output, per line", async () => {
    loginAs("executive");
    useKpiRange.setState({ line: "L1" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: OEE }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [
      { start: "2026-11-02T00:00:00+09:00", good: 1_200, total: 1_500, plan: 1_400 }] } }));
    render(<ExecutivePage />);
    expect(await screen.findByTestId("oee-L1")).toHaveTextContent("60.0%");
    expect(screen.getByText("8 h run of 10 h planned")).toBeInTheDocument();
    expect(screen.getByText("1,200 good of 1,500")).toBeInTheDocument();
    expect(screen.queryByTestId("performance-L1-warning")).toBeNull();
    await waitFor(() => expect(lastQuery("/api/v1/kpi/output")?.get("bucket")).toBe("week"));
    expect(lastQuery("/api/v1/kpi/oee")?.get("line")).toBe("L1");
  });

  it("names the bottleneck performance counted and warns when it is over 100 %", async () => {
    loginAs("executive");
    useKpiRange.setState({ line: "L1" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: { ...OEE, oee: 1.2, performance: {
      value: 1.5625, ideal_cycle_seconds_total: 45_000, run_seconds: 28_800, total_count: 750, over_ideal: true,
      computed_from: [{ line: "L1", counts_from: "records", step: "TEST-30", ideal_cycle_seconds: 60, count: 750,
                        ideal_seconds: 45_000 }] } } }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [] } }));
    render(<ExecutivePage />);
    expect(await screen.findByTestId("performance-L1")).toHaveTextContent("156.3% ⚠");
    expect(screen.getByText("750 at bottleneck TEST-30 (ideal 60 s)")).toBeInTheDocument();
    expect(screen.getByTestId("performance-L1-warning")).toHaveTextContent(/ideal cycle time is set slower/);
    expect(screen.getByTestId("oee-L1")).toHaveTextContent("120.0% ⚠");
  });
});

describe("OEE by week", () => {
  it("cuts a range into calendar weeks, Monday to Sunday, cut at the range's ends", () => {
    expect(weeksOf({ from: "2026-11-01", to: "2026-11-14" })).toEqual([
      { from: "2026-11-01", to: "2026-11-01" }, { from: "2026-11-02", to: "2026-11-08" },
      { from: "2026-11-09", to: "2026-11-14" },
    ]);
    expect(weeksOf({ from: "2026-11-09", to: "2026-11-01" })).toEqual([]);
  });

  it("asks the OEE of each week of the range for the line shown", async () => {
    loginAs("executive");
    useKpiRange.setState({ from: "2026-11-01", to: "2026-11-14", line: "L1" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: OEE }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [] } }));
    render(<ExecutivePage />);
    await screen.findByTestId("weekly-oee-L1");
    const asked = () => kernel.seen.filter((s) => s.path === "/api/v1/kpi/oee")
      .map((s) => `${s.query.get("from")} ${s.query.get("to")} ${s.query.get("line")}`);
    await waitFor(() => expect(new Set(asked())).toEqual(new Set([
      "2026-11-01T00:00:00+09:00 2026-11-15T00:00:00+09:00 L1", // the range
      "2026-11-01T00:00:00+09:00 2026-11-02T00:00:00+09:00 L1",
      "2026-11-02T00:00:00+09:00 2026-11-09T00:00:00+09:00 L1",
      "2026-11-09T00:00:00+09:00 2026-11-15T00:00:00+09:00 L1",
    ])));
  });
});

describe("navigation by audience", () => {
  beforeEach(() => {
    kernel.route("GET", "/api/v1/alerts", () => ({ body: { items: [], open: 0, open_by_severity: {} } }));
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
  });

  const tabs = async () => within(await screen.findByRole("tablist", { name: "Pages" }))
    .getAllByRole("tab").map((t) => t.textContent);

  it("lands a quality manager on the quality view and shows no executive view", async () => {
    kernel.route("GET", "/api/v1/auth/me", () => ({ body: { ...me("viewer"), role: "quality_manager" } }));
    useAuth.setState({ tokens: { access_token: "a", refresh_token: "r", token_type: "bearer", expires_in: 900,
                                 role: "quality_manager", obtained_at: Date.now() }, status: "loading" });
    render(<App />);
    expect(await tabs()).toEqual(["Overview", "Quality", "LOTs", "Labels", "Devices & health", "Alerts"]);
    await waitFor(() => expect(window.location.hash).toBe("#/quality"));
  });

  it("lands an executive on the executive view", async () => {
    kernel.route("GET", "/api/v1/auth/me", () => ({ body: { ...me("viewer"), role: "executive" } }));
    useAuth.setState({ tokens: { access_token: "a", refresh_token: "r", token_type: "bearer", expires_in: 900,
                                 role: "executive", obtained_at: Date.now() }, status: "loading" });
    render(<App />);
    expect(await tabs()).toEqual(["Overview", "Executive", "LOTs", "Labels", "Devices & health", "Alerts"]);
    await waitFor(() => expect(window.location.hash).toBe("#/executive"));
  });
});

describe("language", () => {
  it("switches to Korean, keeps the choice for this user, and formats for it", async () => {
    kernel.route("GET", "/api/v1/alerts", () => ({ body: { items: [], open: 0, open_by_severity: {} } }));
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/auth/me", () => ({ body: me("production_manager", "kim") }));
    useAuth.setState({ tokens: { access_token: "a", refresh_token: "r", token_type: "bearer", expires_in: 900,
                                 role: "production_manager", obtained_at: Date.now() }, status: "loading" });
    window.location.hash = "#/production";
    render(<App />);
    await screen.findByTestId("line-L1");
    const user = userEvent.setup();
    await user.click(screen.getAllByTestId("language")[0].previousElementSibling ?? screen.getAllByRole("combobox")[0]);
    await user.click(await screen.findByRole("option", { name: "한국어" }));
    expect(await screen.findByRole("heading", { name: "생산 — 라인별 현재 상황" })).toBeInTheDocument();
    expect(within(screen.getByTestId("line-L1")).getByTestId("output")).toHaveTextContent("600 중 420");
    expect(localStorage.getItem("mes.language.kim")).toBe("ko");
    expect(document.documentElement.lang).toBe("ko");
  });
});

describe("histories by cursor", () => {
  const event = (n: number) => ({
    at: `2026-11-26T05:${String(n).padStart(2, "0")}:30Z`, recorded_at: `2026-11-26T05:${String(n).padStart(2, "0")}:00Z`,
    received_at: `2026-11-26T05:${String(n).padStart(2, "0")}:30Z`, type: "process_record", lot_number: "LOT-9",
    serial_number: null, data: { process_id: `P${n}`, result: "pass", worker_id: "w1" },
  });

  it("pages a LOT's history newest first with `before`, and shows the true total", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/lots/LOT-9", () => ({ body: { id: 9, lot_number: "LOT-9", product: "NH-1", quantity: 5,
      status: "in_progress", note: "", created_at: "2026-11-26T05:00:00Z", updated_at: "2026-11-26T05:00:00Z",
      closed_at: null, unit_count: 0 } }));
    kernel.route("GET", "/api/v1/lots/LOT-9/units", () => ({ body: [] }));
    kernel.route("GET", "/api/v1/lots/LOT-9/history", (req) => ({ body: req.query.get("before") === "c2"
      ? { lot_number: "LOT-9", status: "in_progress", events: [event(1)], total: 3, next_before: null }
      : { lot_number: "LOT-9", status: "in_progress", events: [event(3), event(2)], total: 3, next_before: "c2" } }));
    render(<LotDetailPage lotNumber="LOT-9" />);
    expect(await screen.findByRole("heading", { name: "History (3)" })).toBeInTheDocument();
    expect(screen.getByTestId("history-count")).toHaveTextContent("Showing 2 of 3");
    expect(lastQuery("/api/v1/lots/LOT-9/history")?.get("limit")).toBe("100");
    await userEvent.setup().click(screen.getByRole("button", { name: "Show older events" }));
    await waitFor(() => expect(screen.getByTestId("history-count")).toHaveTextContent("Showing 3 of 3"));
    expect(lastQuery("/api/v1/lots/LOT-9/history")?.get("before")).toBe("c2");
    expect(screen.queryByRole("button", { name: "Show older events" })).toBeNull();
    const whats = screen.getAllByRole("cell", { name: /^P\d: pass$/ }).map((c) => c.textContent);
    expect(whats).toEqual(["P3: pass", "P2: pass", "P1: pass"]);
  });

  it("shows scans, status changes and registrations with station codes, in the station's order, in ko and en",
     async () => {
    loginAs("viewer");
    const at = "2026-11-26T05:10:00Z";
    const ev = (id: number, type: string, extra: object) => ({ id, at, recorded_at: at, received_at: at, type,
      lot_number: "LOT-9", serial_number: null, station: null, seq: null, actor: "user:kim", data: {}, ...extra });
    const events = [
      ev(7, "process_record", { seq: 12, station: "ST-02", serial_number: "SN-1",
        data: { process_id: "TEST-20", result: "pass", worker_id: "w1" } }),
      ev(6, "scan", { seq: 11, station: "ST-02", serial_number: "SN-1", actor: "station:ST-02 (w1)",
        data: { code: "SN-1", source: "scanner" } }),
      ev(5, "status_change", { data: { from: "in_progress", to: "on_hold", reason: "paste expired" } }),
      ev(4, "registration", { serial_number: "SN-1" }),
      ev(3, "status_change", { data: { from: null, to: "created" } }),
    ];
    kernel.route("GET", "/api/v1/units/SN-1/history", () => ({ body: { serial_number: "SN-1", lot_number: "LOT-9",
      lot_status: "on_hold", product: "NH-1", events, total: 5, next_before: null } }));
    const { unmount } = render(<UnitPage serialNumber="SN-1" />);
    const table = await screen.findByRole("table", { name: /history/i });
    const rows = within(table).getAllByRole("row").slice(1).map((r) =>
      within(r).getAllByRole("cell").map((c) => c.textContent));
    expect(rows.map((r) => r.slice(1, 3))).toEqual([
      ["process", "ST-02"], ["scan", "ST-02"], ["status", "—"], ["registration", "—"], ["status", "—"]]);
    expect(rows.map((r) => r[4])).toEqual(["TEST-20: pass", "Scanned SN-1", "Status in progress → on hold: paste expired",
                                          "Unit SN-1 registered", "LOT created"]);
    expect(within(table).getAllByTitle("Station sequence 11")).toHaveLength(1);
    unmount();
    await i18n.changeLanguage("ko");
    render(<UnitPage serialNumber="SN-1" />);
    expect(await screen.findByRole("cell", { name: "SN-1 스캔" })).toBeInTheDocument();
    expect(screen.getByRole("cell", { name: "LOT 생성" })).toBeInTheDocument();
    expect(screen.getAllByRole("cell", { name: "스캔" })).toHaveLength(1);
  });

  it("shows the station's time in When, and the server's receipt on hover", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/units/SN-1/history", () => ({ body: { serial_number: "SN-1", lot_number: "LOT-9",
      lot_status: "in_progress", product: "NH-1", events: [event(4)], total: 1, next_before: null } }));
    render(<UnitPage serialNumber="SN-1" />);
    const when = await screen.findByTestId("history-when");
    expect(when).toHaveTextContent("11/26/26, 2:04:00 PM"); // recorded_at 05:04:00Z in Seoul
    expect(when.querySelector("[title]")).toHaveAttribute("title", "Received by the server 11/26/26, 2:04:30 PM");
  });

  it("shows today's answer as it is from a kernel that gives no cursor", async () => {
    loginAs("viewer");
    const old = { ...event(5), recorded_at: undefined, received_at: undefined };
    kernel.route("GET", "/api/v1/units/SN-2/history", () => ({ body: { serial_number: "SN-2", lot_number: "LOT-9",
      lot_status: "in_progress", product: "NH-1", events: [old] } }));
    render(<UnitPage serialNumber="SN-2" />);
    expect(await screen.findByTestId("history-count")).toHaveTextContent("Showing 1 of 1");
    expect(screen.getByTestId("history-when")).toHaveTextContent("11/26/26, 2:05:30 PM");
    expect(screen.queryByRole("button", { name: "Show older events" })).toBeNull();
  });
});
