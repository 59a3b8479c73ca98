// Hash routes: parse and build, with LOT numbers and serials that hold slashes and spaces.
import { describe, expect, it } from "vitest";
import { hrefOf, parseRoute, type Route } from "./router";

describe("hash routes", () => {
  it("parses every page", () => {
    expect(parseRoute("")).toEqual({ name: "overview" });
    expect(parseRoute("#/")).toEqual({ name: "overview" });
    expect(parseRoute("#/lots")).toEqual({ name: "lots" });
    expect(parseRoute("#/lots/LOT-1")).toEqual({ name: "lot", lotNumber: "LOT-1" });
    expect(parseRoute("#/devices")).toEqual({ name: "devices" });
    expect(parseRoute("#/alerts")).toEqual({ name: "alerts" });
    expect(parseRoute("#/audit")).toEqual({ name: "audit" });
    expect(parseRoute("#/production/calendar?line=L1")).toEqual({ name: "calendar" });
    expect(parseRoute("#/nope/1/2")).toEqual({ name: "not_found", path: "/nope/1/2" });
  });

  it("round-trips LOT numbers and serials with slashes", () => {
    const routes: Route[] = [
      { name: "lot", lotNumber: "2026/11/LOT 7" },
      { name: "unit", serialNumber: "SN:01/A" },
      { name: "lots" },
      { name: "calendar" },
      { name: "overview" },
    ];
    for (const route of routes) expect(parseRoute(hrefOf(route))).toEqual(route);
  });
});
