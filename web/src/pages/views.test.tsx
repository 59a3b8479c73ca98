// The views for each audience against a fake kernel answering exactly as the issue-13 HTTP contract says.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "../App";
import { hasData } from "../components/common";
import { useKpiRange, weeksOf } from "../components/RangeFilter";
import i18n from "../i18n";
import { usePlant } from "../i18n/format";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, me, useKernel } from "../test/session";
import { useAuth } from "../store/auth";
import { DrillDownPage } from "./DrillDownPage";
import { ExecutivePage } from "./ExecutivePage";
import { LotDetailPage } from "./LotDetailPage";
import { ProductionPage } from "./ProductionPage";
import { QualityPage } from "./QualityPage";
import { UnitPage } from "./UnitPage";

let kernel: FakeKernel;

const LINES_NOW = { items: [
  { line: "L1", name: "SMT line 1", current_lot: "LOT-7", output: 420, output_step: "PACK-30", plan: 600.4, oee: 0.712,
    open_alerts: 2 },
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
    expect(within(l1).getByTestId("output")).toHaveTextContent(/420 of 600(?![.,\d])/); // a pro-rated plan (600.4), in whole units
    expect(within(l1).getByText("Output at PACK-30 vs plan")).toBeInTheDocument(); // each line's own output step
    expect(within(l1).getByTestId("oee")).toHaveTextContent("71.2%");
    expect(within(l1).getByTestId("open-alerts")).toHaveTextContent("2");
    expect(within(l1).getByRole("progressbar", { name: "70.0% of plan" })).toBeInTheDocument();
    const l2 = screen.getByTestId("line-L2");
    expect(within(l2).getByTestId("oee")).toHaveTextContent("—");
    expect(within(l2).getByText(/none/)).toBeInTheDocument();
    expect(within(l2).getByText("Output vs plan")).toBeInTheDocument(); // nothing recorded yet: no step to name
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
                first_pass: 180, first_pass_yield: 0.9, final_yield: 0.95, records: 230, records_passed: 205 }],
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

  it("opens on the range and line a link carries, and ignores a date it cannot read", async () => {
    loginAs("quality_manager");
    window.location.hash = "#/quality?from=2026-10-20&to=2026-10-31&line=L2";
    try {
      render(<QualityPage />);
      await waitFor(() => expect(Object.fromEntries(lastQuery("/api/v1/kpi/pareto") ?? [])).toEqual({
        from: "2026-10-20T00:00:00+09:00", to: "2026-11-01T00:00:00+09:00", tz: "Asia/Seoul", line: "L2",
      }));
      expect(screen.getByLabelText("From")).toHaveValue("2026-10-20");
      window.location.hash = "#/quality?from=20.10.2026&to=2026-10-25";
      await waitFor(() => expect(lastQuery("/api/v1/kpi/pareto")?.get("to")).toBe("2026-10-26T00:00:00+09:00"));
      expect(lastQuery("/api/v1/kpi/pareto")?.get("from")).toBe("2026-10-20T00:00:00+09:00");
      expect(lastQuery("/api/v1/kpi/pareto")?.get("line")).toBe("L2");
    } finally {
      window.location.hash = "";
    }
  });

  it("names the yield columns for what they count: units tested, first-pass and final good, records, retests",
     async () => {
    loginAs("quality_manager");
    render(<QualityPage />);
    const table = await screen.findByRole("table", { name: "Yield" });
    const header = within(table).getAllByRole("columnheader").map((c) => c.textContent);
    expect(header).toEqual(["Process", "Units tested", "First-pass good", "Final good", "First-pass yield",
                            "Final yield", "Records", "Retests"]);
    // `total` (units first tried) is not shown as records; records (230) and retests (230 − 200) are
    expect(within(table).getByRole("cell", { name: "ICT" }).closest("tr")?.textContent)
      .toBe("ICT20018019090.0%95.0%23030");
    expect(screen.getByTestId("yield-legend")).toHaveTextContent("Units tested: units first tried at the step");
    await i18n.changeLanguage("ko");
    expect(within(table).getAllByRole("columnheader").map((c) => c.textContent)).toEqual([
      "공정", "검사 유닛", "초도 합격", "최종 양품", "초도 수율", "최종 수율", "기록 수", "재검사"]);
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
    expect(link).toHaveAttribute("href", "#/quality/drill?kind=product&key=NH-1&from=2026-11-01&to=2026-11-07");
  });

  it("opens the LOTs and units behind a Pareto row, for the range and line the bar was counted on", async () => {
    loginAs("quality_manager");
    useKpiRange.setState({ line: "L1" });
    render(<QualityPage />);
    const pareto = await screen.findByRole("table", { name: "Defect Pareto" });
    expect(within(pareto).getByRole("link", { name: "SCRATCH" }))
      .toHaveAttribute("href", "#/quality/drill?kind=defect&key=SCRATCH&from=2026-11-01&to=2026-11-07&line=L1");
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

  it("names a line that does not exist (LINE_NOT_FOUND: 422, 404 from older kernels), not a kernel too old", async () => {
    loginAs("quality_manager");
    useKpiRange.setState({ line: "GONE" });
    for (const status of [422, 404]) {
      const noLine = () => ({ status, body: { detail: { code: "LINE_NOT_FOUND", message: "line GONE not found",
                                                        field: "line" } } });
      kernel.route("GET", "/api/v1/kpi/pareto", noLine);
      kernel.route("GET", "/api/v1/kpi/yield", noLine);
      const { unmount } = render(<QualityPage />);
      await waitFor(() => expect(screen.getAllByText("No such line.")).toHaveLength(2));
      expect(screen.queryByTestId("not-available")).toBeNull();
      unmount();
    }
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

const DRILL = {
  kind: "defect", key: "SCRATCH", from: "2026-10-31T15:00:00+00:00", to: "2026-11-07T15:00:00+00:00", line: null,
  totals: { count: 3, units: 2, lots: 2 },
  lots: [{ lot_number: "LOT-A", product: "NH-1", count: 2, units: 1 },
         { lot_number: "LOT-C", product: "NH-9", count: 1, units: 1 }],
  units: [{ serial_number: "A-005", lot_number: "LOT-A", count: 2, first_at: "2026-11-02T01:00:00+00:00",
            last_at: "2026-11-02T01:05:00+00:00" }],
  next_cursor: "c1",
};

describe("drill-down behind a bar", () => {
  beforeEach(() => {
    window.location.hash = "#/quality/drill?kind=defect&key=SCRATCH&from=2026-11-01&to=2026-11-07";
  });
  afterEach(() => { window.location.hash = ""; });

  it("lists the LOTs and units with that defect, asks the bar's range, and pages further units", async () => {
    loginAs("quality_manager");
    kernel.route("GET", "/api/v1/kpi/drilldown", (req) => ({ body: req.query.get("cursor") === "c1"
      ? { ...DRILL, units: [{ serial_number: null, lot_number: "LOT-C", count: 1,
                              first_at: "2026-11-03T01:00:00+00:00", last_at: "2026-11-03T01:00:00+00:00" }],
          next_cursor: null }
      : DRILL }));
    render(<DrillDownPage />);
    expect(await screen.findByTestId("drill-totals")).toHaveTextContent("3 failed records on 2 units in 2 LOTs");
    const lots = screen.getByRole("table", { name: "LOTs" });
    expect(within(lots).getByRole("link", { name: "LOT-A" })).toHaveAttribute("href", "#/lots/LOT-A");
    expect(within(lots).getByRole("cell", { name: "LOT-C" }).closest("tr")).toHaveTextContent("LOT-CNH-911");
    expect(Object.fromEntries(lastQuery("/api/v1/kpi/drilldown") ?? [])).toEqual({
      kind: "defect", key: "SCRATCH", limit: "50",
      from: "2026-11-01T00:00:00+09:00", to: "2026-11-08T00:00:00+09:00", tz: "Asia/Seoul",
    });
    const units = screen.getByRole("table", { name: "Units" });
    expect(within(units).getByRole("link", { name: "A-005" })).toHaveAttribute("href", "#/units/A-005");
    await userEvent.setup().click(screen.getByRole("button", { name: "Show more" }));
    expect(await within(units).findByText("(whole LOT)")).toBeInTheDocument();
    expect(lastQuery("/api/v1/kpi/drilldown")?.get("cursor")).toBe("c1");
    expect(screen.queryByRole("button", { name: "Show more" })).toBeNull();
  });

  it("lists a yield bar's units with their outcome and narrows them to the loss", async () => {
    loginAs("quality_manager");
    window.location.hash = "#/quality/drill?kind=process&key=ICT&from=2026-11-01&to=2026-11-07";
    kernel.route("GET", "/api/v1/kpi/drilldown", (req) => ({ body: {
      ...DRILL, kind: "process", key: "ICT", next_cursor: null,
      totals: { total: 200, first_pass: 180, passed: 190, first_pass_yield: 0.9, final_yield: 0.95, lots: 1,
                listed: req.query.get("outcome") === "all" ? 200 : 20 },
      lots: [{ lot_number: "LOT-A", product: "NH-1", total: 200, first_pass: 180, passed: 190 }],
      units: [{ serial_number: "A-005", lot_number: "LOT-A", process: "ICT", station: "S1", first_passed: false,
                passed: true, first_hour: "2026-11-02T01:00:00+00:00" }],
    } }));
    render(<DrillDownPage />);
    expect(await screen.findByTestId("drill-totals")).toHaveTextContent(
      "200 items first tried here: 180 passed the first time (90.0%), 190 in the end; 1 LOT"); // one LOT: the singular
    expect(within(screen.getByRole("table", { name: "Units" })).getByRole("cell", { name: "A-005" })
      .closest("tr")).toHaveTextContent("A-005LOT-AICTS1noyes");
    expect(lastQuery("/api/v1/kpi/drilldown")?.get("outcome")).toBe("all");
    await userEvent.setup().click(screen.getByRole("button", { name: "Failed first try" }));
    await waitFor(() => expect(lastQuery("/api/v1/kpi/drilldown")?.get("outcome")).toBe("first_fail"));
  });

  it("says which archived months the range covers and how many of the bar's records are not listed", async () => {
    loginAs("quality_manager");
    kernel.route("GET", "/api/v1/kpi/drilldown", () => ({ body: {
      ...DRILL, next_cursor: null, totals: { count: 15, listed: 3, units: 2, lots: 2 },
      archived: { months: ["2026-09", "2026-10"], not_listed: 12 } } }));
    render(<DrillDownPage />);
    expect(await screen.findByTestId("drill-totals"))
      .toHaveTextContent("15 failed records (3 listed) on 2 units in 2 LOTs");
    expect(screen.getByTestId("drill-archived")).toHaveTextContent(
      "This range covers archived months (September 2026 and October 2026): their records are offline, while the " +
      "charts keep counting them. 12 failed records of this bar are among them and not listed.");
  });

  it("says a yield bar's units stay listed when its range covers an archived month, in Korean too", async () => {
    loginAs("quality_manager");
    window.location.hash = "#/quality/drill?kind=process&key=ICT&from=2026-10-01&to=2026-11-07";
    kernel.route("GET", "/api/v1/kpi/drilldown", () => ({ body: {
      ...DRILL, kind: "process", key: "ICT", next_cursor: null,
      totals: { total: 1, first_pass: 1, passed: 1, first_pass_yield: 1, final_yield: 1, lots: 1, listed: 1 },
      lots: [{ lot_number: "LOT-A", product: "NH-1", total: 1, first_pass: 1, passed: 1 }], units: [],
      archived: { months: ["2026-10"], not_listed: 0 } } }));
    render(<DrillDownPage />);
    expect(await screen.findByTestId("drill-archived")).toHaveTextContent(
      "(October 2026): their records are offline, while the charts keep counting them. Their units are listed;");
    await i18n.changeLanguage("ko");
    expect(await screen.findByTestId("drill-archived")).toHaveTextContent(
      "보관(아카이브)된 달이 있습니다(2026년 10월). 그 달의 기록은 오프라인이며, 차트에는 계속 집계됩니다. 유닛은 표시되지만");
  });

  it("without a bar chosen, says to choose one and links back to the quality view, in both languages", async () => {
    loginAs("quality_manager");
    window.location.hash = "#/quality/drill";
    render(<DrillDownPage />);
    const notice = await screen.findByTestId("drill-choose");
    expect(notice).toHaveTextContent("No bar chosen: choose a bar of the Pareto or a yield chart");
    expect(within(notice).getByRole("link", { name: "Go to the quality view" })).toHaveAttribute("href", "#/quality");
    expect(screen.queryByTestId("not-available")).toBeNull();
    expect(kernel.seen.filter((s) => s.path === "/api/v1/kpi/drilldown")).toEqual([]);
    await i18n.changeLanguage("ko");
    expect(await screen.findByTestId("drill-choose")).toHaveTextContent("선택한 막대가 없습니다");
    expect(screen.getByRole("link", { name: "품질 화면으로 이동" })).toHaveAttribute("href", "#/quality");
  });

  it("shows the drill-down in Korean", async () => {
    loginAs("quality_manager");
    await i18n.changeLanguage("ko");
    kernel.route("GET", "/api/v1/kpi/drilldown", () => ({ body: { ...DRILL, next_cursor: null } }));
    render(<DrillDownPage />);
    expect(await screen.findByTestId("drill-totals")).toHaveTextContent("불량 기록 3건 · 유닛 2개 · LOT 2개");
    expect(screen.getByRole("heading", { name: "불량 SCRATCH의 내역" })).toBeInTheDocument();
  });
});

describe("executive view", () => {
  it("shows OEE with the figures behind each factor and weekly output, per line", async () => {
    loginAs("executive");
    useKpiRange.setState({ line: "L1" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: OEE }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week",
      output_steps: [{ line: "L1", step: "PACK-30", configured: true }],
      items: [{ start: "2026-11-02T00:00:00+09:00", good: 1_200, first_tried: 1_150, plan: 1_400 }] } }));
    render(<ExecutivePage />);
    expect(await screen.findByTestId("oee-L1")).toHaveTextContent("60.0%");
    expect(screen.getByText("8 h run of 10 h planned")).toBeInTheDocument();
    expect(screen.getByText("1,200 good of 1,500")).toBeInTheDocument();
    expect(screen.queryByTestId("performance-L1-warning")).toBeNull();
    await waitFor(() => expect(lastQuery("/api/v1/kpi/output")?.get("bucket")).toBe("week"));
    expect(lastQuery("/api/v1/kpi/oee")?.get("line")).toBe("L1");
    expect(await screen.findByTestId("output-steps-L1")).toHaveTextContent("Output counted at PACK-30");
  });

  it("names each line's output step when showing every line", async () => {
    loginAs("executive");
    useKpiRange.setState({ line: "" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: { ...OEE, line: null } }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week",
      output_steps: [{ line: "L1", step: "PACK-30", configured: false }, { line: "L2", step: "TEST-20", configured: true }],
      items: [{ start: "2026-11-02T00:00:00+09:00", good: 4, first_tried: 3, plan: 10 }] } }));
    render(<ExecutivePage />);
    expect(await screen.findByTestId("output-steps-all")).toHaveTextContent("Output counted at L1 PACK-30 · L2 TEST-20");
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

  const week = (period: string, start: string, oee: number | null) => ({
    ...OEE, period, start, end: start, oee, computed_from: oee === null ? "no_planned_time" : "factors",
  });
  const WEEKS = [week("2026-W44", "2026-10-31T15:00:00+00:00", 0.5),
                 week("2026-W45", "2026-11-01T15:00:00+00:00", 0.625),
                 week("2026-W46", "2026-11-08T15:00:00+00:00", 0)];

  it("asks one OEE per line and interval, with the weeks in its answer, not one per week", async () => {
    loginAs("executive");
    useKpiRange.setState({ from: "2026-11-01", to: "2026-11-14", line: "" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: { ...OEE, shifts: undefined, bucket: "week",
                                                              buckets: WEEKS } }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [] } }));
    render(<ExecutivePage />);
    for (const scope of ["all", "L1", "L2"]) await screen.findByTestId(`weekly-oee-${scope}`);
    const asked = () => kernel.seen.filter((s) => s.path === "/api/v1/kpi/oee")
      .map((s) => `${s.query.get("from")} ${s.query.get("to")} ${s.query.get("line")} ${s.query.get("bucket")}`);
    await waitFor(() => expect(asked().sort()).toEqual([
      "2026-11-01T00:00:00+09:00 2026-11-15T00:00:00+09:00 L1 week",
      "2026-11-01T00:00:00+09:00 2026-11-15T00:00:00+09:00 L2 week",
      "2026-11-01T00:00:00+09:00 2026-11-15T00:00:00+09:00 null week", // all lines
    ]));
    expect(within(screen.getByTestId("weekly-oee-L1")).queryByTestId("no-data")).toBeNull();
  });

  it("says No data when every week's OEE is null or zero", async () => {
    loginAs("executive");
    useKpiRange.setState({ from: "2026-11-01", to: "2026-11-14", line: "L2" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: { ...OEE, line: "L2", bucket: "week",
      buckets: [week("2026-W44", "2026-10-31T15:00:00+00:00", null),
                week("2026-W45", "2026-11-01T15:00:00+00:00", null),
                week("2026-W46", "2026-11-08T15:00:00+00:00", 0)] } }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [] } }));
    render(<ExecutivePage />);
    const trend = await screen.findByTestId("weekly-oee-L2");
    expect(within(trend).getByTestId("no-data")).toBeInTheDocument();
  });
});

describe("output against plan", () => {
  it("draws a planned week that made nothing (a zero against its plan), not No data", async () => {
    const week = (period: string, start: string, oee: number) =>
      ({ ...OEE, period, start, end: start, oee, computed_from: "factors" });
    loginAs("executive");
    useKpiRange.setState({ from: "2026-11-01", to: "2026-11-14", line: "L2" });
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: { ...OEE, line: "L2", bucket: "week",
      buckets: [week("2026-W44", "2026-10-31T15:00:00+00:00", 0.5),
                week("2026-W45", "2026-11-01T15:00:00+00:00", 0.4)] } }));
    kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", items: [
      { start: "2026-10-31T15:00:00+00:00", good: 0, first_tried: 0, plan: 400 },
      { start: "2026-11-07T15:00:00+00:00", good: 0, first_tried: 0, plan: 400 }] } }));
    const { container } = render(<ExecutivePage />);
    await screen.findByTestId("weekly-oee-L2");
    await waitFor(() => expect(container.querySelectorAll(".recharts-responsive-container")).toHaveLength(2));
    expect(screen.queryAllByTestId("no-data")).toHaveLength(0);
  });
});

describe("no data", () => {
  it("is any series all null or zero", () => {
    expect(hasData([{ v: null }, { v: null }], ["v"])).toBe(false);
    expect(hasData([{ v: 0 }, { v: null }], ["v"])).toBe(false);
    expect(hasData([{ v: 0 }, { v: 0.25 }], ["v"])).toBe(true);
    expect(hasData(undefined, ["v"] as never[])).toBe(false);
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

describe("language stored with the user", () => {
  const startApp = (language: "en" | "ko" | null) => {
    kernel.route("GET", "/api/v1/alerts", () => ({ body: { items: [], open: 0, open_by_severity: {} } }));
    kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
    kernel.route("GET", "/api/v1/auth/me", () => ({ body: { ...me("production_manager", "park"), language } }));
    useAuth.setState({ tokens: { access_token: "a", refresh_token: "r", token_type: "bearer", expires_in: 900,
                                 role: "production_manager", obtained_at: Date.now() }, status: "loading" });
    window.location.hash = "#/production";
    render(<App />);
  };

  it("shows the language /auth/me names, whatever this browser kept", async () => {
    localStorage.setItem("mes.language.park", "en");
    startApp("ko");
    expect(await screen.findByRole("heading", { name: "생산 — 라인별 현재 상황" })).toBeInTheDocument();
    expect(localStorage.getItem("mes.language.park")).toBe("ko");
  });

  it("stores a switch with the user on the server (PATCH /auth/me)", async () => {
    localStorage.removeItem("mes.language.park");
    const saved: unknown[] = [];
    kernel.route("PATCH", "/api/v1/auth/me", (req) => {
      saved.push(req.body);
      return { body: { name: "park", language: (req.body as { language: string }).language } };
    });
    startApp(null);
    await screen.findByTestId("line-L1");
    const user = userEvent.setup();
    await user.click(screen.getAllByTestId("language")[0].previousElementSibling ?? screen.getAllByRole("combobox")[0]);
    await user.click(await screen.findByRole("option", { name: "한국어" }));
    await waitFor(() => expect(saved).toEqual([{ language: "ko" }]));
    await waitFor(() => expect(useAuth.getState().me?.language).toBe("ko"));
    expect(await screen.findByRole("heading", { name: "생산 — 라인별 현재 상황" })).toBeInTheDocument();
  });

  it("keeps the switch in this browser when the server cannot store it", async () => {
    localStorage.removeItem("mes.language.park");
    kernel.route("PATCH", "/api/v1/auth/me", () => ({ status: 405, body: { detail: "Method Not Allowed" } }));
    startApp(null);
    await screen.findByTestId("line-L1");
    const user = userEvent.setup();
    await user.click(screen.getAllByTestId("language")[0].previousElementSibling ?? screen.getAllByRole("combobox")[0]);
    await user.click(await screen.findByRole("option", { name: "한국어" }));
    expect(await screen.findByRole("heading", { name: "생산 — 라인별 현재 상황" })).toBeInTheDocument();
    expect(localStorage.getItem("mes.language.park")).toBe("ko");
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

  it("shows the station's time in When, and the server's receipt in a tooltip of the focusable time", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/units/SN-1/history", () => ({ body: { serial_number: "SN-1", lot_number: "LOT-9",
      lot_status: "in_progress", product: "NH-1", events: [event(4)], total: 1, next_before: null } }));
    render(<UnitPage serialNumber="SN-1" />);
    const when = await screen.findByTestId("history-when");
    expect(when).toHaveTextContent("11/26/26, 2:04:00 PM"); // recorded_at 05:04:00Z in Seoul
    expect(when).toHaveAttribute("tabindex", "0"); // focusable: the tooltip opens on keyboard focus (e2e checks it)
    await userEvent.setup().hover(when);
    expect(await screen.findByRole("tooltip")).toHaveTextContent("Received by the server 11/26/26, 2:04:30 PM");
  });

  it("translates the server's own reasons by their code and spells every actor one way", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/lots/LOT-9", () => ({ body: { id: 9, lot_number: "LOT-9", product: "NH-1", quantity: 5,
      status: "in_progress", note: "", created_at: "2026-11-26T05:00:00Z", updated_at: "2026-11-26T05:00:00Z",
      closed_at: null, unit_count: 0 } }));
    kernel.route("GET", "/api/v1/lots/LOT-9/units", () => ({ body: [] }));
    kernel.route("GET", "/api/v1/lots/LOT-9/history", () => ({ body: { lot_number: "LOT-9", status: "in_progress",
      total: 5, next_before: null, events: [
        { ...event(5), data: { process_id: "TEST-30", result: "pass", worker_id: "admin" }, actor: "user:admin" },
        { at: "2026-11-26T05:04:00Z", type: "status_change", lot_number: "LOT-9", serial_number: null,
          actor: "user:admin", data: { from: "created", to: "in_progress", reason: "first process record",
                                       reason_code: "FIRST_PROCESS_RECORD" } },
        { at: "2026-11-26T05:03:00Z", type: "device_action", lot_number: "LOT-9", serial_number: "SN-2",
          actor: "station:ST-01 (worker? bob)", data: { action: "flash", plugin: "firmware_uploader", device: "FW-1",
            outcome: "error", detail: { reason: "FLASH_TIMEOUT", error: "no answer from the uploader in 60 s" } } },
        { at: "2026-11-26T05:02:00Z", type: "registration", lot_number: "LOT-9", serial_number: "SN-2",
          actor: "user:admin", data: {} },
        { at: "2026-11-26T05:01:00Z", type: "status_change", lot_number: "LOT-9", serial_number: null,
          actor: "cli", data: { from: "on_hold", to: "in_progress", reason: "paste replaced" } },
      ] } }));
    await i18n.changeLanguage("ko");
    render(<LotDetailPage lotNumber="LOT-9" />);
    await screen.findByRole("cell", { name: "TEST-30: 합격" });
    const table = screen.getByRole("table", { name: /이력/ });
    const rows = within(table).getAllByRole("row").slice(1).map((r) =>
      within(r).getAllByRole("cell").map((c) => c.textContent));
    expect(rows.map((r) => r[4])).toEqual([
      "TEST-30: 합격", "상태 생성됨 → 진행 중: 첫 공정 기록",
      "FW-1에서 firmware_uploader flash: 오류 — 플래시 시간 초과", "유닛 SN-2 등록",
      "상태 보류 → 진행 중: paste replaced"]); // a person's reason stays as typed
    expect(rows.map((r) => r[6])).toEqual(["admin", "admin", "스테이션 ST-01 (미등록 작업자 bob)", "admin", "명령줄"]);
    expect(table).not.toHaveTextContent(/user:|first process record|no answer/);
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
