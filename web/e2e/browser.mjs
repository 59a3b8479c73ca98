// What every end-to-end spec shares: Debian's Chromium and its flags, axe-core's verdict, and a failing
// step's message carrying the kernel's log.
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

/** axe-core on the page as it is now: no serious or critical violation (WCAG 2.1 A/AA and best practice). */
export async function assertAccessible(page, where) {
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
