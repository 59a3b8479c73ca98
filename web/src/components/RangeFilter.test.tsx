// The KPI views' default range is the plant's last 7 days, worked out when shown, not when the page loaded.
import { render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { setPlantTimeZone } from "../i18n/format";
import { RangeFilter, useKpiRange } from "./RangeFilter";

afterEach(() => {
  vi.useRealTimers();
  setPlantTimeZone("UTC");
  useKpiRange.setState({ from: "", to: "", line: "" });
});

describe("RangeFilter", () => {
  it("defaults to the plant's last 7 days, today included, whatever the browser's calendar says", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-12-01T12:00:00Z")); // 2 December already at the plant (UTC+14)
    setPlantTimeZone("Pacific/Kiritimati");
    render(<RangeFilter lines={[]} />);
    expect(screen.getByLabelText("From")).toHaveValue("2026-11-26");
    expect(screen.getByLabelText("To")).toHaveValue("2026-12-02");
  });

  it("moves on with the plant's calendar while nobody picked days, and keeps days a manager picked", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    setPlantTimeZone("UTC");
    vi.setSystemTime(new Date("2026-11-30T23:59:00Z"));
    const { rerender } = render(<RangeFilter lines={[]} />);
    expect(screen.getByLabelText("To")).toHaveValue("2026-11-30");
    vi.setSystemTime(new Date("2026-12-01T00:01:00Z"));
    rerender(<RangeFilter lines={[]} />);
    expect(screen.getByLabelText("To")).toHaveValue("2026-12-01");
    useKpiRange.setState({ from: "2026-11-01", to: "2026-11-07" });
    rerender(<RangeFilter lines={[]} />);
    expect(screen.getByLabelText("From")).toHaveValue("2026-11-01");
    expect(screen.getByLabelText("To")).toHaveValue("2026-11-07");
  });
});
