// What every end-to-end spec shares: Debian's Chromium and its flags, logging in through the form, axe-core's
// verdict, the 390 px fit, and a failing step's message carrying the kernel's log.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import AxeBuilder from "@axe-core/playwright";

export const CHROMIUM = process.env.E2E_CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--disable-sync"];

if (!existsSync(CHROMIUM)) {
  throw new Error(`Chromium is missing at ${CHROMIUM}: install it with \`apt-get install -y chromium\` ` +
                  "(or point E2E_CHROMIUM at a Chromium binary); this test never downloads a browser.");
}

/** The page at rest: the pointer moved off the content (to the app bar's corner) and every finite animation
 *  and transition over. A click leaves the pointer where the page then changes: a history's "When" under it
 *  opens its tooltip, and axe-core halfway through the fade-in measures the tooltip's text against a
 *  half-transparent background (a `color-contrast` violation of a tooltip that passes once shown). */
export async function atRest(page, { pointer = "away" } = {}) {
  if (pointer === "away") await page.mouse.move(0, 0);
  await page.evaluate(async () => {
    const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
    await frame();
    await frame(); // React has closed what the pointer left, and the exit transition has begun
    const finite = document.getAnimations().filter((a) => a.effect?.getComputedTiming().endTime !== Infinity);
    await Promise.all(finite.map((a) => a.finished.catch(() => undefined))); // a cancelled one rejects
  });
}

/** axe-core on the page at rest (`atRest`; `{ pointer: "keep" }` to judge what a hover or tap opened): no
 *  serious or critical violation (WCAG 2.1 A/AA and best practice). */
export async function assertAccessible(page, where, { pointer = "away" } = {}) {
  await atRest(page, { pointer });
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"])
    .analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`),
                   [], `axe-core on ${where}`);
}

/** A test body whose failure says what the kernel (`kernelOf()`, from `startKernel`) logged, and whether it
 *  was still running. */
export function withKernelLog(kernelOf, body) {
  return async () => {
    try {
      await body();
    } catch (error) {
      const kernel = kernelOf();
      const state = kernel?.exited?.() ? `kernel exited: ${JSON.stringify(kernel.exited())}` : "kernel still running";
      error.message += `\n--- ${state}; last lines of its log ---\n${kernel?.log().slice(-4000) ?? ""}`;
      throw error;
    }
  };
}

/** Log `user` in through the login form (English or Korean) and wait for the shell. */
export async function logIn(page, baseUrl, user, timeout = 15_000) {
  await page.goto(baseUrl + "/");
  await page.getByLabel(/Username|사용자 이름/).fill(user.username);
  await page.getByLabel(/Password|비밀번호/).fill(user.password);
  await page.getByRole("button", { name: /Log in|로그인/ }).click();
  await page.getByTestId(/^whoami/).first().waitFor({ state: "attached", timeout });
}

/**
 * Nothing wider than the viewport: no horizontal scrolling of the page, and no element past the left or right
 * edge except inside a declared scroll container (`data-scroll-container`: a wide table's region), which itself
 * fits. Any other element that scrolls sideways is a fault too: what it hides is off-screen to a user who has no
 * reason to scroll it (MUI's pager did that to its "next page" button).
 * `root`: where to look (a desktop width passes `main`: the navigation tabs scroll sideways by design).
 */
export async function assertFits(page, where, root = "body") {
  const overflow = await page.evaluate((root) => {
    const width = document.documentElement.clientWidth;
    const name = (el) => `${el.tagName.toLowerCase()}${el.getAttribute("aria-label") ? `[${el.getAttribute("aria-label")}]` : ""}` +
      `.${String(el.className?.baseVal ?? el.className).split(" ")[0]} "${(el.textContent ?? "").trim().slice(0, 30)}"`;
    const outside = (r) => r.right > width + 1 || r.left < -1;
    const problems = [];
    for (const el of document.querySelector(root).querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const style = getComputedStyle(el);
      const declared = el.hasAttribute("data-scroll-container");
      if (["auto", "scroll"].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1 && !declared) {
        problems.push(`scrolls sideways, undeclared: ${name(el)} (${el.scrollWidth} > ${el.clientWidth} px)`);
      }
      if (outside(r) && (declared || !el.parentElement?.closest("[data-scroll-container]"))) {
        problems.push(`past the edge: ${name(el)} (${Math.round(r.left)}–${Math.round(r.right)} px)`);
      }
    }
    return { scroll: document.documentElement.scrollWidth - width, problems: problems.slice(0, 10) };
  }, root);
  assert.deepEqual(overflow, { scroll: 0, problems: [] }, `${where} fits ${await page.evaluate(() => document.documentElement.clientWidth)} px`);
}

