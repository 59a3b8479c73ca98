// The shift-calendar page against a fake kernel answering as `GET/PUT /lines/{code}/shifts` do: the version in
// force and the history, the request a save sends, the kernel's refusals beside the fields they name (en and ko),
// read-only for those who may not edit, and the way there from the production view.
import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ShiftCalendar } from "../api/types";
import i18n from "../i18n";
import { usePlant } from "../i18n/format";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import { ProductionPage } from "./ProductionPage";
import { ShiftCalendarPage } from "./ShiftCalendarPage";

let kernel: FakeKernel;

const LINES_NOW = { items: [
  { line: "L1", name: "SMT line 1", current_lot: null, output: 0, plan: 100, oee: null, open_alerts: 0 },
  { line: "L2", name: "Final assembly", current_lot: null, output: 0, plan: null, oee: null, open_alerts: 0 },
] };

const EARLY = { name: "Early", start: "06:00", end: "14:00", days: [0, 1, 2, 3, 4], planned_output: 500 };
const CALENDAR: ShiftCalendar = {
  line: "L1", timezone: "Asia/Seoul", effective_from: "2026-11-01T15:00:00+00:00", shifts: [EARLY],
  versions: [
    { effective_from: "2026-10-01T15:00:00+00:00", until: "2026-11-01T15:00:00+00:00",
      shifts: [{ ...EARLY, planned_output: 400 }], updated_by: "user:lee", updated_at: "2026-10-01T02:00:00+00:00" },
    { effective_from: "2026-11-01T15:00:00+00:00", until: null, shifts: [EARLY], updated_by: "user:kim",
      updated_at: "2026-11-01T02:00:00+00:00" },
  ],
};

const puts = () => kernel.seen.filter((s) => s.method === "PUT" && s.path === "/api/v1/lines/L1/shifts");

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  usePlant.setState({ timeZone: "Asia/Seoul" });
  kernel.route("GET", "/api/v1/kpi/lines/now", () => ({ body: LINES_NOW }));
  kernel.route("GET", "/api/v1/lines/L1/shifts", () => ({ body: CALENDAR }));
  window.location.hash = "#/production/calendar?line=L1";
});

afterEach(async () => {
  logoutLocally();
  window.location.hash = "";
  usePlant.setState({ timeZone: "UTC" });
  await i18n.changeLanguage("en");
  await kernel.close();
});

/** Answer the next save with a refusal. */
function refuse(status: number, detail: Record<string, unknown>) {
  kernel.route("PUT", "/api/v1/lines/L1/shifts", () => ({ status, body: { detail } }));
}

async function save(name = "Save the new version") {
  await userEvent.setup().click(screen.getByRole("button", { name }));
  await waitFor(() => expect(puts().length).toBeGreaterThan(0));
}

describe("shift calendar", () => {
  it("is linked from the production view for those who may edit it, and only for them", async () => {
    loginAs("production_manager");
    const { unmount } = render(<ProductionPage />);
    expect(await screen.findByRole("link", { name: "Shift calendars" })).toHaveAttribute("href", "#/production/calendar");
    unmount();
    loginAs("viewer");
    render(<ProductionPage />);
    await screen.findByTestId("line-L1");
    expect(screen.queryByRole("link", { name: "Shift calendars" })).toBeNull();
  });

  it("shows the version in force and every version, newest first", async () => {
    loginAs("production_manager");
    render(<ShiftCalendarPage />);
    expect(await screen.findByTestId("calendar-since")).toHaveTextContent("Asia/Seoul");
    const current = screen.getByRole("table", { name: "In force now" });
    expect(within(current).getByRole("cell", { name: "Early" }).closest("tr")).toHaveTextContent(
      "Early06:00–14:00Mon, Tue, Wed, Thu, Fri500");
    const rows = within(screen.getByRole("table", { name: "Versions" })).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.textContent)).toEqual([
      expect.stringMatching(/^11\/2\/26, 12:00:00 AM\(open\)Early 06:00–14:00 · Mon, Tue, Wed, Thu, Fri · plan 500kim/),
      expect.stringMatching(/^10\/2\/26, 12:00:00 AM11\/2\/26, 12:00:00 AMEarly.*plan 400lee/),
    ]);
  });

  it("sends the edited shifts and the date they apply from, and shows the answer", async () => {
    loginAs("production_manager");
    const night = { name: "Night", start: "22:00", end: "06:00", days: [0, 1, 2, 3, 4, 5], planned_output: 450 };
    kernel.route("PUT", "/api/v1/lines/L1/shifts", () => ({ body: {
      ...CALENDAR, versions: [...CALENDAR.versions, { effective_from: "2026-12-01T15:00:00+00:00", until: null,
                                                      shifts: [EARLY, night], updated_by: "user:test-production_manager",
                                                      updated_at: "2026-11-30T01:00:00+00:00" }] } }));
    render(<ShiftCalendarPage />);
    const user = userEvent.setup();
    await screen.findByTestId("shift-0");
    fireEvent.change(screen.getByTestId("effective-from"), { target: { value: "2026-12-02" } });
    await user.click(screen.getByRole("button", { name: "Add a shift" }));
    const row = screen.getByTestId("shift-1");
    await user.type(within(row).getByLabelText("Name"), " Night ");
    fireEvent.change(within(row).getByLabelText("Start"), { target: { value: "22:00" } });
    fireEvent.change(within(row).getByLabelText("End"), { target: { value: "06:00" } }); // ends the next day
    await user.click(within(row).getByRole("button", { name: "Sat" }));
    await user.clear(within(row).getByLabelText("Planned output"));
    await user.type(within(row).getByLabelText("Planned output"), "450");
    await save();
    expect(puts()[0].body).toEqual({ shifts: [EARLY, night], effective_from: "2026-12-02" });
    expect(await screen.findByTestId("calendar-saved")).toHaveTextContent("in force from 12/2/26, 12:00:00 AM");
    expect(within(screen.getByRole("table", { name: "Versions" })).getAllByRole("row")).toHaveLength(4);
  });

  it("leaves the date out when none is picked (the kernel applies it from the current hour)", async () => {
    loginAs("production_manager");
    kernel.route("PUT", "/api/v1/lines/L1/shifts", () => ({ body: CALENDAR }));
    render(<ShiftCalendarPage />);
    await screen.findByTestId("shift-0");
    await save();
    expect(puts()[0].body).toEqual({ shifts: [EARLY] });
  });

  it("shows overlapping shifts at the list and at both rows", async () => {
    loginAs("production_manager");
    refuse(422, { code: "SHIFTS_OVERLAP", message: "shifts Early and Late overlap", field: "shifts",
                  shifts: ["Early", "Late"] });
    render(<ShiftCalendarPage />);
    const user = userEvent.setup();
    await screen.findByTestId("shift-0");
    await user.click(screen.getByRole("button", { name: "Add a shift" }));
    await user.type(within(screen.getByTestId("shift-1")).getByLabelText("Name"), "Late");
    await save();
    expect(await screen.findByTestId("shifts-error")).toHaveTextContent("Shifts Early and Late overlap");
    expect(screen.getByTestId("shift-0-error")).toHaveTextContent("Overlaps shift Late.");
    expect(screen.getByTestId("shift-1-error")).toHaveTextContent("Overlaps shift Early.");
  });

  it("puts each validation error beside the field its loc names, in Korean too", async () => {
    loginAs("production_manager");
    await i18n.changeLanguage("ko");
    refuse(422, { code: "VALIDATION_ERROR", message: "request is invalid", errors: [
      { loc: ["body", "shifts", 0, "start"], msg: "String should match pattern", type: "string_pattern_mismatch" },
      { loc: ["body", "shifts", 0, "days", 1], msg: "Input should be less than or equal to 6", type: "less_than_equal" },
      { loc: ["body", "shifts", 0, "planned_output"], msg: "Input should be a valid integer", type: "int_parsing" },
    ] });
    render(<ShiftCalendarPage />);
    await screen.findByTestId("shift-0");
    fireEvent.change(within(screen.getByTestId("shift-0")).getByLabelText("계획 생산량"), { target: { value: "" } });
    await save("새 버전 저장");
    const row = screen.getByTestId("shift-0");
    expect(await within(row).findByText("HH:MM 형식의 시각(00:00~23:59)을 입력하세요.")).toBeInTheDocument();
    expect(within(row).getByText("요일을 1~7개 선택하세요.")).toBeInTheDocument();
    expect(within(row).getByText("0에서 10,000,000 사이의 정수를 입력하세요.")).toBeInTheDocument();
    expect(within(row).getByLabelText("시작")).toHaveAttribute("aria-invalid", "true");
    expect(puts()[0].body).toMatchObject({ shifts: [{ planned_output: "" }] }); // as typed: the kernel names it
  });

  it("shows a date before today refused for want of back-dating beside the date", async () => {
    loginAs("production_manager");
    refuse(403, { code: "FORBIDDEN", message: "a shift calendar dated before today needs shifts:backdate",
                  permission: "shifts:backdate", field: "effective_from" });
    render(<ShiftCalendarPage />);
    await screen.findByTestId("shift-0");
    fireEvent.change(screen.getByTestId("effective-from"), { target: { value: "2026-01-05" } });
    await save();
    expect(await screen.findByText(/A date before today needs the permission to date a calendar back/))
      .toBeInTheDocument();
    expect(screen.getByLabelText("In force from")).toHaveAttribute("aria-invalid", "true");
  });

  it("is read-only for a viewer", async () => {
    loginAs("viewer");
    render(<ShiftCalendarPage />);
    expect(await screen.findByText(/changing them needs a production manager/)).toBeInTheDocument();
    expect(screen.getByRole("table", { name: "Versions" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save the new version" })).toBeNull();
    expect(screen.queryByTestId("shift-0")).toBeNull();
  });
});
