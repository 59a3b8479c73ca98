// Issue 13, T3: the executive view's two weekly charts name a week one way ("W48 · Nov 23", its Monday on the
// plant's calendar), and a week the range cuts is marked and explained, in English and Korean. The charts are
// replaced by recorders of what they are given (jsdom draws no Recharts axis).
import { render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useKpiRange } from "../components/RangeFilter";
import i18n from "../i18n";
import { usePlant } from "../i18n/format";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import { ExecutivePage } from "./ExecutivePage";

const drawn = vi.hoisted(() => ({ oee: [] as { label: string; tooltip: string }[][],
                                  output: [] as { label: string; tooltip: string }[][] }));

vi.mock("../panels/KpiCharts", () => ({
  WeeklyOeeChart: ({ items }: { items: { label: string; tooltip: string }[] }) => {
    drawn.oee.push(items);
    return <div data-testid="oee-chart" />;
  },
  OutputChart: ({ items }: { items: { label: string; tooltip: string }[] }) => {
    drawn.output.push(items);
    return <div data-testid="output-chart" />;
  },
}));

let kernel: FakeKernel;

const FIGURES = {
  oee: 0.5, computed_from: "factors",
  availability: { value: 0.8, planned_seconds: 36_000, downtime_seconds: 7_200, run_seconds: 28_800 },
  performance: { value: 0.9, ideal_cycle_seconds_total: 27_000, run_seconds: 28_800, total_count: 1_500 },
  quality: { value: 0.7, good: 1_050, total: 1_500 },
};
// Seoul: Monday 00:00 is Sunday 15:00 UTC. The range is Wednesday 2026-11-25 to Tuesday 2026-12-01.
const W48 = { period: "2026-W48", start: "2026-11-22T15:00:00+00:00", end: "2026-11-29T15:00:00+00:00",
              counted_from: "2026-11-24T15:00:00+00:00", counted_to: "2026-11-29T15:00:00+00:00", partial: true };
const W49 = { period: "2026-W49", start: "2026-11-29T15:00:00+00:00", end: "2026-12-06T15:00:00+00:00",
              counted_from: "2026-11-29T15:00:00+00:00", counted_to: "2026-12-01T15:00:00+00:00", partial: true };

function answer(weeks: object[]) {
  kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: { items: [] } }));
  kernel.route("GET", "/api/v1/kpi/oee", () => ({ body: {
    ...FIGURES, line: "L1", from: W48.counted_from, to: W49.counted_to, bucket: "week",
    buckets: weeks.map((w) => ({ ...FIGURES, ...w })) } }));
  kernel.route("GET", "/api/v1/kpi/output", () => ({ body: { bucket: "week", output_steps: [],
    items: weeks.map((w, i) => ({ ...w, good: 300 + i, first_tried: 300, plan: 750 - i * 450 })) } }));
}

const labels = (items: { label: string }[] | undefined) => (items ?? []).map((i) => i.label);

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  usePlant.setState({ timeZone: "Asia/Seoul" });
  useKpiRange.setState({ from: "2026-11-25", to: "2026-12-01", line: "L1" });
  loginAs("executive");
  drawn.oee.length = 0;
  drawn.output.length = 0;
});

afterEach(async () => {
  logoutLocally();
  usePlant.setState({ timeZone: "UTC" });
  await i18n.changeLanguage("en");
  await kernel.close();
});

describe("weeks on the executive view", () => {
  it("labels each week the same on the OEE and the output chart, and says which weeks are partial", async () => {
    answer([W48, W49]);
    render(<ExecutivePage />);
    expect(await screen.findByTestId("partial-weeks-L1")).toHaveTextContent(
      "* Partial week: the range covers only part of it, so its output, plan and OEE count only the days in the " +
      "range (W48: Nov 25 – Nov 29, W49: Nov 30 – Dec 1).");
    await screen.findByTestId("output-chart");
    await screen.findByTestId("oee-chart");
    expect(labels(drawn.oee.at(-1))).toEqual(["W48 · Nov 23 *", "W49 · Nov 30 *"]);
    expect(labels(drawn.output.at(-1))).toEqual(labels(drawn.oee.at(-1)));
    expect(drawn.output.at(-1)?.[0].tooltip).toBe("W48 · Nov 23 — partial week: only Nov 25 – Nov 29 counted");
  });

  it("says nothing of partial weeks when the range holds whole weeks", async () => {
    useKpiRange.setState({ from: "2026-11-23", to: "2026-12-06", line: "L1" });
    answer([{ ...W48, counted_from: W48.start, counted_to: W48.end, partial: false },
            { ...W49, counted_to: W49.end, partial: false }]);
    render(<ExecutivePage />);
    await screen.findByTestId("output-chart");
    await screen.findByTestId("oee-chart");
    expect(labels(drawn.output.at(-1))).toEqual(["W48 · Nov 23", "W49 · Nov 30"]);
    expect(screen.queryByTestId("partial-weeks-L1")).toBeNull();
  });

  it("names weeks and partial weeks in Korean", async () => {
    await i18n.changeLanguage("ko");
    answer([W48, W49]);
    render(<ExecutivePage />);
    expect(await screen.findByTestId("partial-weeks-L1")).toHaveTextContent(
      "(48주차: 11월 25일 ~ 11월 29일, 49주차: 11월 30일 ~ 12월 1일)");
    await screen.findByTestId("output-chart");
    expect(labels(drawn.output.at(-1))).toEqual(["48주차 · 11월 23일 *", "49주차 · 11월 30일 *"]);
  });
});
