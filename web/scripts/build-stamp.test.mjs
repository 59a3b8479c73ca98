// @vitest-environment node
// The build stamp decides whether the e2e run reuses the dashboard build: tried on a temp copy of the
// layout (sources, build output, stamp file), never on the real build.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { staleReason, writeStamp } from "./build-stamp.mjs";

let root;
let places;

function put(path, text) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "mes-build-stamp-"));
  const webDir = join(root, "web");
  const outDir = join(root, "static", "web");
  places = { webDir, outDir, stamp: join(webDir, "node_modules", ".cache", "mes-web-build.json") };
  put(join(webDir, "package.json"), '{"name": "dashboard"}\n');
  put(join(webDir, "package-lock.json"), '{"lockfileVersion": 3}\n');
  put(join(webDir, "src", "App.tsx"), "export const App = () => null;\n");
  put(join(webDir, "node_modules", "react", "index.js"), "module.exports = {};\n");
  put(join(webDir, "e2e", "dashboard.test.mjs"), "// drives the browser\n");
  put(join(webDir, "README.md"), "# the dashboard\n");
  put(join(outDir, "index.html"), "<!doctype html><script src=/assets/app-1.js></script>\n");
  put(join(outDir, "assets", "app-1.js"), "console.log('app');\n");
  put(join(outDir, "assets", "app-1.js.br"), "brotli bytes\n");
  writeStamp(places);
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("build stamp", () => {
  it("reuses the build when sources and output are as the stamp recorded", () => {
    expect(staleReason(places)).toBeNull();
  });

  it("reuses it when only what is not a source changed: dependencies' files, e2e specs, docs", () => {
    put(join(places.webDir, "node_modules", "react", "index.js"), "module.exports = { changed: true };\n");
    put(join(places.webDir, "e2e", "dashboard.test.mjs"), "// another step\n");
    put(join(places.webDir, "README.md"), "# edited docs\n");
    expect(staleReason(places)).toBeNull();
  });

  it("rebuilds when a source file changed", () => {
    put(join(places.webDir, "src", "App.tsx"), "export const App = () => 'changed';\n");
    expect(staleReason(places)).toBe("the sources changed since the last build");
  });

  it("rebuilds when a source file was added, removed or renamed, or the lock file changed", () => {
    put(join(places.webDir, "src", "New.tsx"), "export {};\n");
    expect(staleReason(places)).toBe("the sources changed since the last build");
    unlinkSync(join(places.webDir, "src", "New.tsx"));
    expect(staleReason(places)).toBeNull();
    unlinkSync(join(places.webDir, "src", "App.tsx"));
    put(join(places.webDir, "src", "Main.tsx"), "export const App = () => null;\n");
    expect(staleReason(places)).toBe("the sources changed since the last build");
    writeStamp(places);
    put(join(places.webDir, "package-lock.json"), '{"lockfileVersion": 3, "packages": {"x": {}}}\n');
    expect(staleReason(places)).toBe("the sources changed since the last build");
  });

  it("rebuilds when an output file changed, was added or was removed", () => {
    put(join(places.outDir, "assets", "app-1.js"), "console.log('half written');\n");
    expect(staleReason(places)).toBe("the build output changed since it was made");
    writeStamp(places);
    put(join(places.outDir, "assets", "stray.js"), "x\n");
    expect(staleReason(places)).toBe("the build output changed since it was made");
    unlinkSync(join(places.outDir, "assets", "stray.js"));
    expect(staleReason(places)).toBeNull();
    unlinkSync(join(places.outDir, "assets", "app-1.js.br"));
    expect(staleReason(places)).toBe("the build output changed since it was made");
  });

  it("rebuilds when the build is gone (no index.html)", () => {
    unlinkSync(join(places.outDir, "index.html"));
    expect(staleReason(places)).toBe("there is no build");
    rmSync(places.outDir, { recursive: true });
    expect(staleReason(places)).toBe("there is no build");
  });

  it("rebuilds when there is no stamp, or it cannot be read", () => {
    unlinkSync(places.stamp);
    expect(staleReason(places)).toBe("no record of a previous build");
    put(places.stamp, "{ not json");
    expect(staleReason(places)).toBe("the record of the previous build is unreadable");
  });

  it("rebuilds when the stamp was written before there was any build", () => {
    rmSync(places.outDir, { recursive: true });
    writeStamp(places);
    put(join(places.outDir, "index.html"), "<!doctype html>\n");
    expect(staleReason(places)).toBe("the build output changed since it was made");
  });
});
