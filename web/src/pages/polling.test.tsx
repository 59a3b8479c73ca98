// The seed's polling, end to end over HTTP: summary every 10 s, alerts every 30 s, backoff 2/4/8 s.
import { render } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "../App";
import { startFakeKernel, type FakeKernel } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import { OverviewPage } from "./OverviewPage";

const realSetTimeout = globalThis.setTimeout;
const sleep = (ms: number) => new Promise((resolve) => realSetTimeout(resolve, ms));

let kernel: FakeKernel;

const SUMMARY = {
  generated_at: "2026-11-26T05:00:00Z", timezone: "UTC",
  lots: { by_status: {}, total: 0, closed_today: 0 },
  records_today: { total: 0, pass: 0, fail: 0, first_attempts: 0, first_pass: 0, first_pass_yield: null },
  stations: { total: 0, online: 0, silent: 0, never_seen: 0 },
  devices: { total: 0, enabled: 0, by_kind: {} },
  alerts: { open: 0, open_by_severity: {} },
};
const count = (path: string) => kernel.seen.filter((s) => s.path === path).length;

/** Let real HTTP round trips finish (only the app's timers are fake), then check the count. */
async function expectCount(path: string, n: number) {
  for (let i = 0; i < 100 && count(path) < n; i += 1) await sleep(20);
  await sleep(30);
  expect(count(path)).toBe(n);
}

async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms);
}

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [] }));
  kernel.route("GET", "/api/v1/alerts", () => ({ body: { items: [], open: 0, open_by_severity: {} } }));
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
});

afterEach(async () => {
  vi.useRealTimers();
  logoutLocally();
  await kernel.close();
});

describe("polling over HTTP", () => {
  it("fetches the summary every 10 s, and after failures retries in 2, 4, 8 s", async () => {
    let healthy = true;
    kernel.route("GET", "/api/v1/dashboard/summary", () => (healthy ? { body: SUMMARY } : {
      status: 503, body: { detail: { code: "SERVICE_UNAVAILABLE", message: "database unreachable" } },
    }));
    loginAs("viewer");
    render(<OverviewPage />);
    const summary = "/api/v1/dashboard/summary";
    await expectCount(summary, 1);
    await advance(9_999);
    await expectCount(summary, 1);
    await advance(1);
    await expectCount(summary, 2);

    healthy = false;
    await advance(10_000);
    await expectCount(summary, 3); // fails
    await advance(1_999);
    await expectCount(summary, 3);
    await advance(1);
    await expectCount(summary, 4); // +2 s, fails
    await advance(4_000);
    await expectCount(summary, 5); // +4 s, fails
    await advance(7_999);
    await expectCount(summary, 5);
    healthy = true;
    await advance(1);
    await expectCount(summary, 6); // +8 s, succeeds
    await advance(10_000);
    await expectCount(summary, 7); // back to every 10 s
  });

  it("polls open alerts every 30 s from the shell, whatever page is open", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/lots", () => ({ body: { items: [], total: 0, limit: 25, offset: 0 } }));
    window.location.hash = "#/lots";
    render(<App />);
    const alerts = "/api/v1/alerts";
    await expectCount(alerts, 1);
    await advance(29_999);
    await expectCount(alerts, 1);
    await advance(1);
    await expectCount(alerts, 2);
    await advance(30_000);
    await expectCount(alerts, 3);
  });

  it("shares one request per interval between the shell's alert badge and an alerts panel", async () => {
    loginAs("viewer");
    kernel.route("GET", "/api/v1/dashboard/summary", () => ({ body: SUMMARY }));
    kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [
      { plugin: "dashboard_kpi", id: "alerts", title: "Open alerts", kind: "table", endpoint: "/api/v1/alerts",
        refresh_seconds: 30, options: { items: "items" } },
    ] }));
    window.location.hash = "#/";
    render(<App />);
    const alerts = "/api/v1/alerts";
    await expectCount("/api/v1/dashboard/panels", 1);
    await expectCount(alerts, 1);
    await advance(30_000);
    await expectCount(alerts, 2);
  });
});
