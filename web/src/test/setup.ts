// Test setup: jest-dom matchers, a clean DOM and storage between tests.
import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";

// findBy…/waitFor wait up to 10 s: answers come over real HTTP, on a machine that may be busy.
configure({ asyncUtilTimeout: 10_000 });

afterEach(() => {
  if (typeof window === "undefined") return; // node-environment tests
  cleanup();
  window.localStorage.clear();
  window.location.hash = "";
});

// Pages update from real HTTP answers that arrive outside act(); React's reminder about it is noise here.
const consoleError = console.error;
console.error = (...args: unknown[]) => {
  if (typeof args[0] === "string" && args[0].includes("not wrapped in act(")) return;
  consoleError(...args);
};
