// Beside the catalog test (no bare literal in the code), the other way English reaches the Korean UI: texts the
// kernel writes (alerts, breaker failures, plugin states, health reasons). The alerts and devices pages are drawn in Korean from
// answers shaped as the kernel sends them, and every word on screen must be Korean but for the identifiers the
// answers carry (codes of stations, devices, breakers, plugins) and the names of protocols and settings.
import { render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlertsPage } from "../pages/AlertsPage";
import { DevicesPage } from "../pages/DevicesPage";
import { useAlerts } from "../store/alerts";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import i18n from "./index";

let kernel: FakeKernel;
const AT = "2026-11-30T01:00:00+00:00";

/** Words that are not English prose: identifiers from the answers below, protocol and setting names, a command;
 *  and AM/PM, which Node's ICU writes in Korean times (Chromium writes 오전/오후). */
const NOT_WORDS = ["label_printer:PRN-01", "label_printer", "firmware_uploader", "acme_printer", "future_plugin", "modbus",
                   "PRN-01", "PRN-02", "ST-01", "ST-02", "MC-01", "LINE-A", "zpl_tcp", "Modbus", "MQTT", "OPC UA",
                   "HTTP", "API", "LOT", "Redis", "RAM", "~HS", "mes line apply", "AM", "PM"];
/** An error or setting code (`NOT_FOUND`, `PLUGINS_DENY`): shown beside its words, for a technician. */
const CODE = /\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g;

/** Latin words left on screen once the identifiers are taken out: English the reader cannot read. */
function englishOn(element: HTMLElement): string[] {
  let text = (element.textContent ?? "").replace(CODE, " ");
  for (const word of [...NOT_WORDS].sort((a, b) => b.length - a.length)) text = text.split(word).join(" ");
  return [...new Set(text.match(/[A-Za-z]{2,}(?:[ '][A-Za-z]{2,})*/g) ?? [])];
}

/** Alerts as the kernel raises them (mes_kernel/notify.py, services/stations.py), with their codes. */
const ALERTS = { open: 3, open_by_severity: { critical: 1, warning: 2 }, items: [
  { id: 1, key: "breaker:label_printer:PRN-01", severity: "critical", source: "breaker", raised_at: AT,
    resolved_at: null, open: true,
    message: "Circuit breaker label_printer:PRN-01 OPENED after 3 failures: ConnectionRefusedError: [Errno 111] refused",
    detail: { code: "BREAKER_OPEN", breaker: "label_printer:PRN-01", failures: 3,
              reason: "ConnectionRefusedError: [Errno 111] Connect call failed" } },
  { id: 2, key: "station:ST-01:silent", severity: "warning", source: "station", raised_at: AT, resolved_at: null,
    open: true, message: "Station ST-01 silent for 3600 s",
    detail: { code: "STATION_SILENT", station: "ST-01", silent_seconds: 3600, last_heartbeat_at: AT } },
  { id: 4, key: "station:ST-02:silent", severity: "warning", source: "station", raised_at: AT, resolved_at: null,
    open: true, message: "Station ST-02 silent for 120 s",
    detail: { code: "STATION_SILENT", station: "ST-02", silent_seconds: 120, line_id: 7, line: "LINE-A" } },
  { id: 3, key: "station:ST-01:backlog", severity: "warning", source: "station", raised_at: AT, resolved_at: null,
    open: true, message: "Station ST-01 outbox keeps growing (40 queued)",
    detail: { code: "STATION_BACKLOG", station: "ST-01", queued: 40, recent_outbox_depths: [1, 5, 9, 20, 40] } },
] };

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  loginAs("admin");
  await i18n.changeLanguage("ko");
});

afterEach(async () => {
  logoutLocally();
  useAlerts.setState({ data: undefined });
  await i18n.changeLanguage("en");
  await kernel.close();
});

describe("the Korean UI shows no English the kernel wrote", () => {
  it("words alerts by their code", async () => {
    useAlerts.setState({ data: ALERTS, updatedAt: Date.now() });
    const { container } = render(<AlertsPage />);
    await screen.findByText(/회로 차단기 label_printer:PRN-01이\(가\) 3회 실패 후 열렸습니다: 연결 거부됨/);
    expect(screen.getByText("스테이션 ST-01이(가) 1시간 0분 동안 응답이 없습니다")).toBeInTheDocument();
    expect(screen.getByText("LINE-A 라인의 스테이션 ST-02이(가) 2분 동안 응답이 없습니다")).toBeInTheDocument();
    expect(screen.getByText("스테이션 ST-01의 전송 대기열이 계속 늘고 있습니다 (대기 40건)")).toBeInTheDocument();
    expect(englishOn(container)).toEqual([]);
  });

  it("shows an alert without a known code (an older kernel's, a plugin's) as it was written", async () => {
    useAlerts.setState({ data: { ...ALERTS, items: [
      { ...ALERTS.items[1], detail: { station: "ST-01" } },
      { ...ALERTS.items[2], message: "Oven 3 too hot", detail: { code: "OVEN_HOT" } },
    ] } });
    render(<AlertsPage />);
    expect(await screen.findByText("Station ST-01 silent for 3600 s")).toBeInTheDocument();
    expect(screen.getByText("Oven 3 too hot")).toBeInTheDocument();
  });

  it("words plugin names, plugin states and breaker failures", async () => {
    kernel.route("GET", "/api/v1/health", () => ({ body: {
      status: "DEGRADED", timestamp: AT, critical_down: [],
      components: {
        kernel: { status: "UP", checks: { database: { status: "UP", critical: true, reason: null } } },
        plugins: { status: "UP", checks: {} },
        breakers: { status: "DEGRADED", checks: {} },
        stations: { status: "UP", checks: {} },
      },
    } }));
    kernel.route("GET", "/api/v1/health/circuit-breakers", () => ({ body: {
      "label_printer:PRN-01": { state: "open", failure_count: 3, failure_threshold: 3, recovery_timeout: 30,
                                last_failure: AT, last_failure_reason: "ConnectionRefusedError: [Errno 111] refused",
                                opened_at: AT, opens: 1 },
    } }));
    const plugin = { distribution: null, version: "0.1.0", kernel_api: ">=1,<2", state: "loaded", reason: null,
                     reason_code: null, reason_params: {} };
    kernel.route("GET", "/api/v1/plugins", () => ({ body: { safe_mode: false, plugins: [
      { ...plugin, name: "label_printer" },
      { ...plugin, name: "firmware_uploader", state: "disabled", reason: "probe recalibration",
        reason_code: "SWITCHED_OFF" },
      { ...plugin, name: "future_plugin", state: "incompatible", reason: "needs kernel API >=2.0,<3, this kernel provides 1.4",
        reason_code: "KERNEL_API_MISMATCH", reason_params: { spec: ">=2.0,<3", kernel: "1.4" } },
      { ...plugin, name: "acme_printer", state: "failed", reason: "import failed: ModuleNotFoundError: No module named 'x'",
        reason_code: "IMPORT_FAILED", reason_params: { error: "ModuleNotFoundError: No module named 'x'" } },
    ] } }));
    kernel.route("GET", "/api/v1/stations", () => ({ body: [] }));
    // a refusal: its words by its code (the kernel's message is English)
    kernel.route("GET", "/api/v1/devices", () => ({ status: 503, body: { detail: {
      code: "SERVICE_UNAVAILABLE", message: "the database is not reachable right now; retry", retry_after: 5 } } }));
    const { container } = render(<DevicesPage />);
    // the first answer drawn: four MUI tables take jsdom seconds on a busy machine (it took 10 s once)
    expect(await screen.findByText("라벨 프린터", {}, { timeout: 40_000 })).toBeInTheDocument();
    expect(await screen.findByText(/지금은 사용할 수 없습니다/)).toBeInTheDocument();
    expect(await screen.findByText("커널 API >=2.0,<3이(가) 필요하지만 이 커널은 1.4임")).toBeInTheDocument();
    expect(screen.getByText("불러오지 못함: 필요한 모듈이 없음")).toBeInTheDocument();
    expect(await screen.findByTitle("ConnectionRefusedError: [Errno 111] refused")).toHaveTextContent("연결 거부됨");
    // an administrator's reason for switching a plugin off is a person's words, shown as typed
    expect(screen.getByText("관리자가 끔: probe recalibration")).toBeInTheDocument();
    expect(englishOn(container)).toEqual(["probe recalibration"]);
  }, 60_000);

  it("words health reasons by their code: kernel checks, plugin checks and their devices, stations", async () => {
    const why = (code: string, reason: string, params: Record<string, unknown> = {}) =>
      ({ reason, reason_code: code, reason_params: params });
    const silent = why("PRINTER_SILENT", "no reply to ~HS (printer silent)");
    const noPaper = why("PRINTER_NOT_READY", "paper out, head open", { problems: [
      why("PRINTER_PAPER_OUT", "paper out"), why("PRINTER_HEAD_OPEN", "head open")] });
    kernel.route("GET", "/api/v1/health", () => ({ body: {
      status: "DEGRADED", timestamp: AT, critical_down: [],
      components: {
        kernel: { status: "DEGRADED", checks: {
          database: { status: "UP", critical: true, reason: null },
          redis: { status: "DEGRADED", critical: false, ...why("REDIS_UNREACHABLE",
            "unreachable (Connection refused); serving from the in-process cache, limits and breakers",
            { error: "ConnectionRefusedError: Connection refused" }) },
          disk: { status: "DEGRADED", critical: false, ...why("DISK_NEARLY_FULL", "disk 93.1% used", { percent: 93.1 }) },
        } },
        plugins: { status: "DOWN", checks: {
          label_printer: { status: "DOWN", state: "loaded", checks: {
            printers: { status: "DOWN", critical: false,
              ...why("DEVICES_NOT_UP", "PRN-01: no reply to ~HS (printer silent); PRN-02: paper out, head open",
                     { problems: [{ device: "PRN-01", ...silent }, { device: "PRN-02", ...noPaper }] }),
              checks: { "PRN-01": { status: "DOWN", ...silent }, "PRN-02": { status: "DOWN", ...noPaper } } },
          } },
          modbus: { status: "DOWN", state: "loaded", checks: {
            machines: { status: "DOWN", critical: false, ...why("MACHINES_NOT_UP",
              "1 of 1 Modbus machines not UP: MC-01", { count: 1, total: 1, devices: ["MC-01"] }) } } },
          acme_printer: { status: "DEGRADED", state: "loaded", checks: {
            printers: { status: "DEGRADED", critical: false, reason: "toner low" } } }, // a plugin without codes
        } },
        breakers: { status: "UP", checks: {} },
        stations: { status: "DEGRADED", checks: {
          "ST-01": { status: "DEGRADED", critical: false, ...why("STATION_SILENT", "silent for 3600s", { seconds: 3600 }) },
          "ST-02": { status: "DEGRADED", critical: false, ...why("STATION_DRIVER_PROBLEMS",
            "drivers: PRN-01: zpl_tcp missing", { problems: [why("STATION_DRIVER_MISSING", "PRN-01: zpl_tcp missing",
              { device: "PRN-01", driver: "zpl_tcp" })] }) },
        } },
      },
    } }));
    kernel.route("GET", "/api/v1/health/circuit-breakers", () => ({ body: {} }));
    const plugin = { distribution: null, version: "0.1.0", kernel_api: ">=1,<2", state: "loaded", reason: null,
                     reason_code: null, reason_params: {} };
    kernel.route("GET", "/api/v1/plugins", () => ({ body: { safe_mode: false, plugins: [
      { ...plugin, name: "label_printer", health_checks: ["printers"] },
      { ...plugin, name: "modbus", health_checks: ["machines"] },
      { ...plugin, name: "acme_printer", health_checks: ["printers"] },
    ] } }));
    const station = (code: string, beat: string | null) => ({ id: 1, code, name: "", line: "LINE-A",
                                                              last_heartbeat_at: beat, heartbeat: {} });
    kernel.route("GET", "/api/v1/stations", () => ({ body: [station("ST-01", AT), station("ST-02", AT)] }));
    kernel.route("GET", "/api/v1/devices", () => ({ body: [
      { code: "PRN-02", kind: "label_printer", driver: "zpl_tcp", line: "LINE-A", station: "ST-01", enabled: true,
        config: {} }] }));
    const { container } = render(<DevicesPage />);
    const texts = [
      "연결 안 됨 (연결 거부됨): 프로세스 내부 캐시, 제한, 차단기로 운영 중",
      "디스크 93.1% 사용 중",
      "라벨 프린터: 비정상 장치: PRN-01: ~HS에 응답 없음 (프린터 무응답); PRN-02: 준비 안 됨: 용지 없음; 헤드 열림",
      "설비: 설비 1대 중 1대 비정상: MC-01",
      "준비 안 됨: 용지 없음; 헤드 열림", // the device's own row
      "저하: 1시간 0분 동안 응답 없음",
      "저하: 드라이버 문제: PRN-01: 드라이버 zpl_tcp이(가) 설치되지 않음",
    ];
    // every answer drawn (four MUI tables take jsdom seconds on a busy machine)
    await waitFor(() => { for (const text of texts) expect(screen.getByText(text)).toBeInTheDocument(); },
                  { timeout: 40_000 });
    expect(screen.getByText("디스크 93.1% 사용 중")).toHaveAttribute("title", "disk 93.1% used"); // English on hover
    // a third-party plugin's reason without a code: its own words, as given
    expect(englishOn(container)).toEqual(["toner low"]);
  }, 60_000);
});
