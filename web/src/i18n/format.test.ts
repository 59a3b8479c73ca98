// Numbers, percentages, durations and dates: one formatter, per language, in the plant's time zone.
import { afterEach, describe, expect, it } from "vitest";
import i18n from "./index";
import { formatDateTime, formatDuration, formatNumber, formatPercent, plantDate, plantMidnight, usePlant } from "./format";

afterEach(async () => {
  await i18n.changeLanguage("en");
  usePlant.setState({ timeZone: "UTC" });
});

describe("formatting", () => {
  it("writes numbers and ratios the same way everywhere", () => {
    expect(formatNumber(1234567.891)).toBe("1,234,567.89");
    expect(formatPercent(0.875)).toBe("87.5%");
    expect(formatPercent(null)).toBe("—");
    expect(formatNumber(Number.NaN)).toBe("—");
  });

  it("follows the user's language", async () => {
    await i18n.changeLanguage("ko");
    expect(formatDuration(3 * 3600 + 600)).toBe("3시간 10분");
    expect(formatDuration(42)).toBe("42초");
    await i18n.changeLanguage("en");
    expect(formatDuration(3 * 3600 + 600)).toBe("3 hr 10 min");
  });

  it("shows instants in the plant's zone, not the browser's", () => {
    usePlant.setState({ timeZone: "Asia/Seoul" });
    expect(formatDateTime("2026-11-26T20:30:00Z")).toBe("11/27/26, 5:30:00 AM");
    expect(plantDate(new Date("2026-11-26T20:30:00Z"))).toBe("2026-11-27");
    usePlant.setState({ timeZone: "America/New_York" });
    expect(formatDateTime("2026-11-26T20:30:00Z")).toBe("11/26/26, 3:30:00 PM");
  });

  it("turns a plant calendar day into its midnight with the zone's offset, across DST", () => {
    expect(plantMidnight("2026-11-01", 0, "Asia/Seoul")).toBe("2026-11-01T00:00:00+09:00");
    expect(plantMidnight("2026-11-30", 1, "Asia/Seoul")).toBe("2026-12-01T00:00:00+09:00");
    // New York leaves daylight time on 2026-11-01 at 02:00: that midnight is still EDT, the next EST.
    expect(plantMidnight("2026-11-01", 0, "America/New_York")).toBe("2026-11-01T00:00:00-04:00");
    expect(plantMidnight("2026-11-01", 1, "America/New_York")).toBe("2026-11-02T00:00:00-05:00");
    expect(plantMidnight("not a date")).toBe("");
  });
});
