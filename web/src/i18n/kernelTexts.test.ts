// Health reasons worded from their codes: the values they name formatted for the reader, lists of reasons worded in
// turn, and the English as it came when there is no code to word.
import { afterEach, describe, expect, it } from "vitest";
import i18n from "./index";
import { healthReason } from "./kernelTexts";

const t = i18n.t.bind(i18n);

afterEach(async () => {
  await i18n.changeLanguage("en");
});

describe("health reasons", () => {
  it("words a reason by its code, with its values formatted", async () => {
    expect(healthReason({ reason: "timed out after 0.5s", reason_code: "CHECK_TIMED_OUT",
                          reason_params: { seconds: 0.5 } }, t)).toBe("no answer within 0.5 sec");
    expect(healthReason({ reason: "silent for 5400s", reason_code: "STATION_SILENT",
                          reason_params: { seconds: 5400 } }, t)).toBe("silent for 1 hr 30 min");
    expect(healthReason({ reason: "x", reason_code: "CHECK_FAILED",
                          reason_params: { error: "TimeoutError: " } }, t)).toBe("the check failed: no answer in time");
    await i18n.changeLanguage("ko");
    expect(healthReason({ reason: "memory 93.5% used", reason_code: "MEMORY_NEARLY_FULL",
                          reason_params: { percent: 93.5 } }, t)).toBe("메모리 93.5% 사용 중");
  });

  it("words each reason a reason lists, with its device", () => {
    const node = { reason: "PRN-01: paper out", reason_code: "DEVICES_NOT_UP", reason_params: { problems: [
      { device: "PRN-01", reason: "paper out", reason_code: "PRINTER_NOT_READY", reason_params: { problems: [
        { reason: "paper out", reason_code: "PRINTER_PAPER_OUT", reason_params: {} }] } },
      { device: "PRN-02", reason: "toner low" }] } };
    expect(healthReason(node, t)).toBe("devices not UP: PRN-01: not ready: paper out; PRN-02: toner low");
  });

  it("shows a reason without a known code as it came, and nothing as a dash", () => {
    expect(healthReason({ reason: "toner low" }, t)).toBe("toner low");
    expect(healthReason({ reason: "oven hot", reason_code: "ACME_OVEN_HOT" }, t)).toBe("oven hot");
    expect(healthReason({ reason: null }, t)).toBe("—");
    expect(healthReason(undefined, t)).toBe("—");
  });

  it("words a plugin's state node by the plugin's own codes", () => {
    expect(healthReason({ reason: "import failed: ModuleNotFoundError: No module named 'x'",
                          reason_code: "IMPORT_FAILED",
                          reason_params: { error: "ModuleNotFoundError: No module named 'x'" } }, t))
      .toBe("could not be loaded: a module it needs is missing");
  });
});
