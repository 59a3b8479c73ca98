// End to end (issue 13, F2/F9/F10/F11): a user's language follows them to a fresh browser; at 390 px a LOT's
// history is a stacked list with the receipt time reachable by tap and keyboard, in one language and one actor
// spelling; the quality view names its yield columns for what they count and fits a 1366 px screen.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { assertAccessible, CHROMIUM, logIn, CHROMIUM_ARGS, withKernelLog as logging } from "./browser.mjs";
import { staleReason } from "../scripts/build-stamp.mjs";
import { apiClient, startKernel, WEB_DIR } from "./kernel.mjs";

const TIMEOUT = 15_000;
const ADMIN = { username: "lang-admin", password: "admin-pass-123", role: "admin" };
const KIM = { username: "kim", password: "kim-pass-12345", role: "production_manager" };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

let kernel;
const withKernelLog = (body) => logging(() => kernel, body);
let browser;

const login = (page, user) => logIn(page, kernel.baseUrl, user, TIMEOUT);

/** Nothing on the page past the screen's right edge, and nothing that scrolls sideways. */
async function assertNoSideways(page, where) {
  const problems = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const found = [];
    if (document.documentElement.scrollWidth > width) found.push(`page ${document.documentElement.scrollWidth} px`);
    for (const el of document.querySelectorAll("main *")) {
      const r = el.getBoundingClientRect();
      if (r.width && r.height && (r.right > width + 1 || r.left < -1)) {
        found.push(`${el.tagName} "${(el.textContent ?? "").slice(0, 30)}" ${Math.round(r.left)}–${Math.round(r.right)}`);
      }
      const style = getComputedStyle(el);
      if (["auto", "scroll"].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
        found.push(`scrolls sideways: ${el.tagName} "${(el.getAttribute("aria-label") ?? "")}"`);
      }
    }
    return found.slice(0, 10);
  });
  assert.deepEqual(problems, [], `${where}: nothing sideways`);
}

describe("language per user, histories on a phone, the yield table", { timeout: 600_000 }, () => {
  before(async () => {
    const stale = process.env.E2E_SKIP_BUILD ? null : staleReason();
    if (stale) {
      const build = spawnSync("npm", ["run", "build"], { cwd: WEB_DIR, encoding: "utf8", timeout: 600_000 });
      assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    }
    kernel = await startKernel({ users: [ADMIN, KIM] });
    const call = await apiClient(kernel.baseUrl, ADMIN.username, ADMIN.password);
    await call("POST", "/processes", { id: "ASSY-10", name: "Assembly", sequence: 10 });
    await call("POST", "/processes", { id: "TEST-30", name: "Final test", sequence: 30 });
    await call("POST", "/lots", { lot_number: "LOT-C", product: "P-100", quantity: 3 });
    await call("POST", "/lots/LOT-C/units", { serial_numbers: ["C-001", "C-002", "C-003"] });
    // TEST-30: C-001 passes; C-002 fails, is retested and passes; C-003 fails twice → 3 units, 5 records
    const records = [["C-001", "pass"], ["C-002", "fail"], ["C-002", "pass"], ["C-003", "fail"], ["C-003", "fail"]];
    for (const [i, [serial, result]] of records.entries()) {
      await call("POST", "/process-records", {
        idempotency_key: `lang-record-${i}`, lot_number: "LOT-C", process_id: "TEST-30", serial_number: serial, result,
        defect_code: result === "fail" ? (i === 1 ? "D-SCRATCH" : "D-SOLDER-BRIDGE") : null, worker_id: ADMIN.username,
      });
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  after(async () => {
    await browser?.close();
    await kernel?.stop();
  });

  test("a language chosen in one browser is the language of a fresh one", withKernelLog(async () => {
    const first = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "en-US" });
    try {
      const page = await first.newPage();
      await login(page, KIM);
      await page.getByRole("heading", { level: 1 }).waitFor({ timeout: TIMEOUT });
      const saved = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/me") && r.request().method() === "PATCH");
      await page.getByTestId("language").locator("xpath=..").getByRole("combobox").click();
      await page.getByRole("option", { name: "한국어" }).click();
      assert.equal((await saved).status(), 200);
      await page.getByRole("tab", { name: "개요" }).waitFor({ timeout: TIMEOUT });
    } finally {
      await first.close();
    }
    // a new context: no localStorage, an English browser — the server's choice wins
    const second = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "en-US" });
    try {
      const page = await second.newPage();
      await login(page, KIM);
      await page.getByRole("tab", { name: "개요" }).waitFor({ timeout: TIMEOUT });
      assert.equal(await page.evaluate(() => document.documentElement.lang), "ko");
      const me = await page.evaluate(async () => {
        const tokens = JSON.parse(localStorage.getItem("mes.tokens"));
        const r = await fetch("/api/v1/auth/me", { headers: { authorization: `Bearer ${tokens.access_token}` } });
        return r.json();
      });
      assert.equal(me.language, "ko");
      // and back to English, for the next browser
      await page.getByTestId("language").locator("xpath=..").getByRole("combobox").click();
      const saved = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/me") && r.request().method() === "PATCH");
      await page.getByRole("option", { name: "English" }).click();
      assert.equal((await saved).status(), 200);
    } finally {
      await second.close();
    }
    const third = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "ko-KR" });
    try {
      const page = await third.newPage();
      await login(page, KIM);
      await page.getByRole("tab", { name: "Overview" }).waitFor({ timeout: TIMEOUT }); // even in a Korean browser
    } finally {
      await third.close();
    }
  }));

  test("at 390 px a LOT's history is a stacked list, in Korean only, receipt time by tap and keyboard",
       withKernelLog(async () => {
    const context = await browser.newContext({ ...PHONE, locale: "ko-KR" });
    const errors = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (err) => errors.push(err.message));
      await login(page, ADMIN);
      await page.goto(kernel.baseUrl + "/#/lots/LOT-C");
      const list = page.getByTestId("history-list");
      await list.waitFor({ timeout: TIMEOUT });
      assert.equal(await page.locator("main table").filter({ hasText: "TEST-30" }).count(), 0, "no history table");
      const entries = list.getByTestId("history-entry");
      await entries.filter({ hasText: "첫 공정 기록" }).waitFor({ timeout: TIMEOUT });
      const texts = await entries.allTextContents();
      assert.equal(texts.length, 10, texts.join("\n")); // created, 3 registrations, started, 5 records
      for (const text of texts) {
        assert.doesNotMatch(text, /user:|first process record|registered|created|Received/, text);
        assert.match(text, /작업자: (lang-admin|명령줄)/, text);
        assert.match(text, /서버 수신 /, text);
      }
      assert.ok(texts.some((t) => t.includes("상태 생성됨 → 진행 중: 첫 공정 기록")), texts.join("\n"));
      // every serial on one line, every entry inside the screen
      for (const link of await list.getByRole("link", { name: /^C-00\d$/ }).all()) {
        const box = await link.boundingBox();
        assert.ok(box.height < 30, `serial on one line: ${JSON.stringify(box)}`);
      }
      await assertNoSideways(page, "#/lots/LOT-C at 390 px");
      // the keyboard reaches the time: Tab until a history time has focus, its tooltip opens
      let focused = false;
      for (let i = 0; i < 80 && !focused; i += 1) {
        await page.keyboard.press("Tab");
        focused = await page.evaluate(() => document.activeElement?.getAttribute("data-testid") === "history-when");
      }
      assert.ok(focused, "Tab reaches a history time");
      await page.getByRole("tooltip").filter({ hasText: "서버 수신" }).waitFor({ timeout: TIMEOUT });
      await page.keyboard.press("Escape");
      await page.getByRole("tooltip").waitFor({ state: "detached", timeout: TIMEOUT });
      // a tap on another time shows when the server received that one
      await entries.nth(3).getByTestId("history-when").tap();
      await page.getByRole("tooltip").filter({ hasText: "서버 수신" }).waitFor({ timeout: TIMEOUT });
      // axe judges what is drawn: wait for the tooltip's fade-in to end (half-transparent text fails contrast)
      await page.waitForFunction(() => [...document.querySelectorAll(".MuiTooltip-tooltip")]
        .every((el) => getComputedStyle(el).opacity === "1"), null, { timeout: TIMEOUT });
      await assertAccessible(page, "#/lots/LOT-C at 390 px in Korean", { pointer: "keep" }); // the tooltip too
      // the same history on a wide screen stays a table, with the same words
      await page.setViewportSize({ width: 1400, height: 900 });
      const table = page.getByRole("table", { name: /이력/ });
      await table.getByRole("cell", { name: "상태 생성됨 → 진행 중: 첫 공정 기록" }).waitFor({ timeout: TIMEOUT });
      assert.doesNotMatch(await table.textContent(), /user:/);
      await assertAccessible(page, "#/lots/LOT-C at 1400 px in Korean");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  }));

  test("the quality view names what it counts, fits 1366 px, and labels every Pareto bar at 390 px",
       withKernelLog(async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "en-US" });
    try {
      const page = await context.newPage();
      await login(page, ADMIN);
      await page.goto(kernel.baseUrl + "/#/quality");
      const table = page.getByRole("table", { name: "Yield" });
      await table.getByRole("cell", { name: "TEST-30" }).waitFor({ timeout: TIMEOUT });
      assert.deepEqual(await table.getByRole("columnheader").allTextContents(), ["Process", "Units tested",
        "First-pass good", "Final good", "First-pass yield", "Final yield", "Records", "Retests"]);
      const row = table.getByRole("row").filter({ has: page.getByRole("cell", { name: "TEST-30" }) });
      // 3 units tested, 1 good at once, 2 good in the end, 5 records of which 2 retests
      assert.deepEqual(await row.getByRole("cell").allTextContents(), ["TEST-30", "3", "1", "2", "33.3%", "66.7%",
                                                                       "5", "2"]);
      const region = page.locator('[role=region][aria-label="Yield"]');
      const fits = await region.evaluate((el) => el.scrollWidth <= el.clientWidth + 1);
      assert.ok(fits, "the yield table fits its card at 1366 px");
      await assertNoSideways(page, "#/quality at 1366 px");
      await page.setViewportSize({ width: 390, height: 844 });
      const pareto = page.getByRole("region", { name: "Defect Pareto" });
      await pareto.locator(".recharts-bar-rectangle").first().waitFor({ timeout: TIMEOUT });
      await page.waitForTimeout(300); // the chart's resize to the new width
      const labels = (await pareto.locator("svg text").allTextContents()).filter((text) => /^D-/.test(text));
      assert.deepEqual(labels, ["D-SOLDER-BRIDGE", "D-SCRATCH"], "every bar named, the first one too");
    } finally {
      await context.close();
    }
  }));
});
