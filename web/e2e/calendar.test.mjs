// End to end (issue 13): a production manager edits a line's shift calendar against a real kernel — reached from
// the production view, overlapping shifts and a back-dated change refused beside their fields, a night shift
// across midnight saved as a new version — at 1366 px and 390 px, in English and Korean, axe-clean throughout.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { assertAccessible, assertFits, CHROMIUM, CHROMIUM_ARGS, logIn, withKernelLog as logging } from "./browser.mjs";
import { staleReason } from "../scripts/build-stamp.mjs";
import { apiClient, startKernel, WEB_DIR } from "./kernel.mjs";

const TIMEOUT = 15_000;
const ADMIN = { username: "cal-admin", password: "admin-pass-123", role: "admin" };
const MANAGER = { username: "cal-manager", password: "manager-pass-123", role: "production_manager" };
const VIEWER = { username: "cal-viewer", password: "viewer-pass-123", role: "viewer" };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

let kernel;
let admin;
const withKernelLog = (body) => logging(() => kernel, body);
let browser;

/** Fill shift row `index` of the form. */
async function fillShift(page, index, { name, start, end, plan }) {
  await page.getByTestId(`shift-${index}-name`).fill(name);
  await page.getByTestId(`shift-${index}-start`).fill(start);
  await page.getByTestId(`shift-${index}-end`).fill(end);
  await page.getByTestId(`shift-${index}-planned_output`).fill(String(plan));
}

describe("shift calendar editor", { timeout: 600_000 }, () => {
  before(async () => {
    const stale = process.env.E2E_SKIP_BUILD ? null : staleReason();
    if (stale) {
      const build = spawnSync("npm", ["run", "build"], { cwd: WEB_DIR, encoding: "utf8", timeout: 600_000 });
      assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    }
    kernel = await startKernel({ users: [ADMIN, MANAGER, VIEWER] });
    admin = await apiClient(kernel.baseUrl, ADMIN.username, ADMIN.password);
    await admin("PUT", "/lines/LINE-C", { code: "LINE-C", name: "Line C", devices: [] });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  after(async () => {
    await browser?.close();
    await kernel?.stop();
  });

  test("a production manager saves a new version; the kernel's refusals show beside their fields",
       withKernelLog(async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: "en-US" });
    const page = await context.newPage();
    await logIn(page, kernel.baseUrl, MANAGER, TIMEOUT);
    await page.goto(kernel.baseUrl + "/#/production");
    await page.getByRole("link", { name: "Shift calendars" }).click();
    await page.getByRole("heading", { name: "Shift calendars" }).waitFor({ timeout: TIMEOUT });
    await page.getByText("No calendar yet").waitFor({ timeout: TIMEOUT });

    // two shifts sharing 13:00–14:00 on weekdays: 422 SHIFTS_OVERLAP, shown at the list and at both rows
    await page.getByRole("button", { name: "Add a shift" }).click();
    await fillShift(page, 0, { name: "Early", start: "06:00", end: "14:00", plan: 500 });
    await page.getByRole("button", { name: "Add a shift" }).click();
    await fillShift(page, 1, { name: "Late", start: "13:00", end: "21:00", plan: 400 });
    await page.getByRole("button", { name: "Save the new version" }).click();
    await page.getByTestId("shifts-error").getByText("Shifts Early and Late overlap").waitFor({ timeout: TIMEOUT });
    assert.match(await page.getByTestId("shift-1-error").textContent(), /Overlaps shift Early/);
    await assertAccessible(page, "#/production/calendar with overlapping shifts");

    // dated before today: 403, only an administrator may date a calendar back
    await page.getByTestId("shift-1-start").fill("14:00");
    await page.getByTestId("effective-from").fill("2020-01-06");
    await page.getByRole("button", { name: "Save the new version" }).click();
    await page.getByText(/A date before today needs the permission/).waitFor({ timeout: TIMEOUT });
    assert.equal(await page.getByTestId("shifts-error").count(), 0, "the overlap's message is gone");

    // from the current hour, with a night shift across midnight, Monday to Saturday
    await page.getByTestId("effective-from").fill("");
    await page.getByRole("button", { name: "Add a shift" }).click();
    await fillShift(page, 2, { name: "Night", start: "22:00", end: "06:00", plan: 300 });
    await page.getByTestId("shift-2-days").getByRole("button", { name: "Sat" }).click();
    await page.getByRole("button", { name: "Save the new version" }).click();
    await page.getByTestId("calendar-saved").waitFor({ timeout: TIMEOUT });
    const stored = await admin("GET", "/lines/LINE-C/shifts");
    assert.deepEqual(stored.shifts, [
      { name: "Early", start: "06:00", end: "14:00", days: [0, 1, 2, 3, 4], planned_output: 500 },
      { name: "Late", start: "14:00", end: "21:00", days: [0, 1, 2, 3, 4], planned_output: 400 },
      { name: "Night", start: "22:00", end: "06:00", days: [0, 1, 2, 3, 4, 5], planned_output: 300 },
    ]);
    assert.equal(stored.versions.length, 1);
    assert.equal(stored.versions[0].updated_by, `user:${MANAGER.username}`);
    const versions = page.getByRole("table", { name: "Versions" });
    await versions.getByText(/Night 22:00–06:00 · Mon, Tue, Wed, Thu, Fri, Sat · plan 300/).waitFor({ timeout: TIMEOUT });
    assert.match(await page.getByRole("table", { name: "In force now" }).textContent(), /Night22:00–06:00/);
    await assertAccessible(page, "#/production/calendar after a save at 1366 px");
    await assertFits(page, "#/production/calendar at 1366 px", "main"); // the tabs above scroll by design
    await context.close();
  }));

  test("at 390 px in Korean the form fits, and a viewer reads the calendar without a form", withKernelLog(async () => {
    const context = await browser.newContext({ ...PHONE, locale: "ko-KR" });
    const page = await context.newPage();
    await logIn(page, kernel.baseUrl, MANAGER, TIMEOUT);
    await page.goto(kernel.baseUrl + "/#/production/calendar?line=LINE-C");
    await page.getByTestId("shift-2").waitFor({ timeout: TIMEOUT });
    await page.getByRole("heading", { name: "근무 편성표" }).waitFor({ timeout: TIMEOUT });
    // a blank name: 422 VALIDATION_ERROR at that row's name, in Korean
    await page.getByTestId("shift-0-name").fill("   ");
    await page.getByRole("button", { name: "새 버전 저장" }).click();
    await page.getByTestId("shift-0").getByText("공백만이 아닌 1~64자의 이름을 입력하세요.").waitFor({ timeout: TIMEOUT });
    await assertFits(page, "#/production/calendar at 390 px in Korean");
    await assertAccessible(page, "#/production/calendar at 390 px in Korean with an error");
    await context.close();

    const viewer = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: "en-US" });
    const other = await viewer.newPage();
    await logIn(other, kernel.baseUrl, VIEWER, TIMEOUT);
    await other.goto(kernel.baseUrl + "/#/production");
    await other.getByTestId("line-LINE-C").waitFor({ timeout: TIMEOUT });
    assert.equal(await other.getByRole("link", { name: "Shift calendars" }).count(), 0);
    await other.goto(kernel.baseUrl + "/#/production/calendar");
    await other.getByText(/changing them needs a production manager/).waitFor({ timeout: TIMEOUT });
    assert.equal(await other.getByRole("button", { name: "Save the new version" }).count(), 0);
    await assertAccessible(other, "#/production/calendar read-only");
    await viewer.close();
  }));
});
