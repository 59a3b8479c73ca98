// Reading panel data by the options plugins declare (the real panels of the bundled plugins).
import { describe, expect, it } from "vitest";
import { axisLabel, cellText, columnsOf, formatAge, formatValue, localizePanel, pick, rowsOf, seriesOf, statOf } from "./panelData";
import { usePlant } from "../i18n/format";

describe("pick", () => {
  it("follows dotted paths through objects and arrays", () => {
    const data = { a: { b: [{ c: 7 }] } };
    expect(pick(data, "a.b.0.c")).toBe(7);
    expect(pick(data, "a.x.y")).toBeUndefined();
    expect(pick(data, "")).toBe(data);
  });
});

describe("stat panels", () => {
  it("formats the first-pass yield as a percentage with its caption", () => {
    const yieldAnswer = { value: 0.75, first_pass: 3, first_attempts: 4 };
    const options = { value: "value", format: "percent", caption: "{first_pass} of {first_attempts} first tries" };
    expect(statOf(yieldAnswer, options)).toEqual({ value: "75.0%", caption: "3 of 4 first tries" });
  });

  it("shows a dash when nothing was measured yet", () => {
    expect(statOf({ value: null }, { value: "value", format: "percent" }).value).toBe("—");
  });

  it("reads `value` by default", () => {
    expect(statOf({ value: 1234 }, {}).value).toBe("1,234");
  });
});

describe("series panels", () => {
  const throughput = {
    points: [
      { hour: "2026-11-26T04:00:00+00:00", records: 2, pass: 2, fail: 0 },
      { hour: "2026-11-26T05:00:00+00:00", records: 4, pass: 3, fail: 1 },
    ],
  };

  it("uses the declared x key and series of a timeseries", () => {
    const view = seriesOf(throughput, { items: "points", x: "hour", series: ["pass", "fail"] }, "timeseries");
    expect(view).toEqual({ x: "hour", series: ["pass", "fail"], rows: throughput.points });
  });

  it("guesses the axis and numeric series when options say nothing", () => {
    const view = seriesOf(throughput.points, {}, "timeseries");
    expect(view.x).toBe("hour");
    expect(view.series).toEqual(["records", "pass", "fail"]);
  });

  it("uses label and value of a bar panel", () => {
    const defects = { items: [{ defect_code: "SOLDER", count: 3 }] };
    expect(seriesOf(defects, { items: "items", label: "defect_code", value: "count" }, "bar"))
      .toEqual({ x: "defect_code", series: ["count"], rows: defects.items });
  });
});

describe("table panels", () => {
  it("takes rows from `items` and the declared columns", () => {
    const alerts = { items: [{ severity: "critical", message: "printer down" }], open: 1 };
    const rows = rowsOf(alerts, { items: "items" });
    expect(rows).toHaveLength(1);
    expect(columnsOf(rows, { columns: [{ key: "severity", title: "Severity" }, "message"] })).toEqual([
      { key: "severity", title: "Severity", format: undefined },
      { key: "message", title: "message" },
    ]);
  });

  it("falls back to the first row's keys and to an `items` list", () => {
    const rows = rowsOf({ items: [{ a: 1, b: 2 }] }, {});
    expect(columnsOf(rows, {}).map((c) => c.key)).toEqual(["a", "b"]);
    expect(rowsOf({ nothing: true }, {})).toEqual([]);
  });
});

describe("formatting", () => {
  it("formats values by kind", () => {
    expect(formatValue(undefined)).toBe("—");
    expect(formatValue(true)).toBe("yes");
    expect(formatValue(0.5, "percent")).toBe("50.0%");
    expect(formatValue(90, "seconds")).toBe("1 min");
    usePlant.setState({ timeZone: "Asia/Seoul" });
    expect(formatValue("2026-11-26T05:00:00Z", "datetime")).toBe("11/26/26, 2:00:00 PM"); // the plant's 14:00
    usePlant.setState({ timeZone: "UTC" });
  });

  it("writes ages the way a supervisor reads them", () => {
    expect([formatAge(42), formatAge(300), formatAge(3 * 3600 + 600), formatAge(2 * 86400 + 4 * 3600)])
      .toEqual(["42 sec", "5 min", "3 hr 10 min", "2 days 4 hr"]);
  });

  it("labels time axes by the hour and leaves other labels alone", () => {
    expect(axisLabel("SOLDER-BRIDGE")).toBe("SOLDER-BRIDGE");
    expect(axisLabel("2026-11-26T05:00:00+00:00")).toMatch(/\d\d[:.]\d\d/);
  });
});

describe("localizePanel", () => {
  const panel = {
    plugin: "p", id: "p.x", title: "Open alerts", kind: "table" as const, endpoint: "/api/v1/x", refresh_seconds: 30,
    options: {
      caption: "{first_pass} of {first_attempts} first tries",
      series: ["pass", "fail"],
      columns: [{ key: "severity", title: "Severity" }, { key: "raised_at", title: "Raised", format: "datetime" }, "source"],
    },
    translations: { ko: { "Open alerts": "미해결 경보", "{first_pass} of {first_attempts} first tries": "첫 시도 {first_attempts}건 중 {first_pass}건 합격", pass: "합격", Severity: "심각도" } },
  };

  it("reads the panel's texts through its catalogue for the language (ko-KR reads ko)", () => {
    const local = localizePanel(panel, "ko-KR");
    expect(local.title).toBe("미해결 경보");
    expect(local.options.caption).toBe("첫 시도 {first_attempts}건 중 {first_pass}건 합격");
    expect(local.options.series).toEqual(["pass", "fail"]); // data keys stay
    expect(local.options.series_labels).toEqual({ pass: "합격", fail: "fail" }); // no entry: as is
    const declared = (local.options.columns as unknown[]).map((c) =>
      typeof c === "object" ? { ...(c as object), words: undefined } : c);
    expect(declared).toEqual([
      { key: "severity", title: "심각도" }, { key: "raised_at", title: "Raised", format: "datetime" }, "source",
    ]);
    expect(seriesOf({ points: [] }, local.options, "timeseries").labels).toEqual({ pass: "합격", fail: "fail" });
  });

  it("words a table's cells by the column's code or word, from the same catalogue", () => {
    const alerts = { ...panel, options: { columns: [
      { key: "severity", title: "Severity", translate: true },
      { key: "message", title: "Message", code: "detail.code", params: "detail" },
    ] }, translations: { ko: { critical: "심각", BREAKER_OPEN: "차단기 {breaker}: {failures}회 실패" } } };
    const [severity, message] = columnsOf([], localizePanel(alerts, "ko").options);
    const row = { severity: "critical", message: "Circuit breaker b:1 OPENED after 1234 failures",
                  detail: { code: "BREAKER_OPEN", breaker: "b:1", failures: 1234 } };
    expect([cellText(row, severity), cellText(row, message)]).toEqual(["심각", "차단기 b:1: 1,234회 실패"]);
    // a word or code the catalogue lacks: the value as it is
    const other = { severity: "minor", message: "plugin text", detail: { code: "PLUGIN_THING" } };
    expect([cellText(other, severity), cellText(other, message)]).toEqual(["minor", "plugin text"]);
  });

  it("leaves a panel as declared in a language it has no catalogue for", () => {
    expect(localizePanel(panel, "en")).toBe(panel);
    expect(seriesOf({ points: [] }, panel.options, "timeseries").labels).toBeUndefined(); // the legend shows keys
  });
});
