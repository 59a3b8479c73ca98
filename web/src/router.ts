// Hash routes (`/#/lots/LOT-1`), so the kernel serves one index.html and needs no SPA fallback.
import { useSyncExternalStore } from "react";

export type Route =
  | { name: "overview" }
  | { name: "production" }
  | { name: "calendar" }
  | { name: "quality" }
  | { name: "drill" }
  | { name: "executive" }
  | { name: "lots" }
  | { name: "lot"; lotNumber: string }
  | { name: "unit"; serialNumber: string }
  | { name: "devices" }
  | { name: "alerts" }
  | { name: "audit" }
  | { name: "labels" }
  | { name: "not_found"; path: string };

const PAGES = ["devices", "alerts", "audit", "production", "quality", "executive", "labels"] as const;

/** Parse the part after `#` into a route; LOT numbers and serials may hold `/`, so they are encoded. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/\?.*$/, "") || "/";
  const parts = path.split("/").filter(Boolean);
  const [head, arg] = parts;
  if (parts.length === 0) return { name: "overview" };
  if (head === "lots" && parts.length === 1) return { name: "lots" };
  if (head === "lots" && parts.length === 2) return { name: "lot", lotNumber: decodeURIComponent(arg) };
  if (head === "quality" && arg === "drill" && parts.length === 2) return { name: "drill" };
  if (head === "production" && arg === "calendar" && parts.length === 2) return { name: "calendar" };
  if (head === "units" && parts.length === 2) return { name: "unit", serialNumber: decodeURIComponent(arg) };
  if (parts.length === 1 && (PAGES as readonly string[]).includes(head)) return { name: head as (typeof PAGES)[number] };
  return { name: "not_found", path };
}

export function hrefOf(route: Route): string {
  switch (route.name) {
    case "overview":
      return "#/";
    case "lot":
      return `#/lots/${encodeURIComponent(route.lotNumber)}`;
    case "unit":
      return `#/units/${encodeURIComponent(route.serialNumber)}`;
    case "drill":
      return "#/quality/drill";
    case "calendar":
      return "#/production/calendar";
    case "not_found":
      return `#${route.path}`;
    default:
      return `#/${route.name}`;
  }
}

/** The query part of the hash (`#/lots?product=P-1` → product=P-1), for filters a link carries. */
export function hashQuery(hash: string = window.location.hash): URLSearchParams {
  const at = hash.indexOf("?");
  return new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "");
}

/** The LOT list filtered: plant-calendar days (YYYY-MM-DD) and a product (a drill-down from a chart). */
export function lotsHref(filters: { from?: string; to?: string; product?: string }): string {
  const query = new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => !!e[1]));
  const text = query.toString();
  return `#/lots${text ? `?${text}` : ""}`;
}

/** What a bar of the quality view stands for: the chart (`kind`), the bar (`key`; none: records
 * without a station), and the range and line it was counted over (plant-calendar days). */
export interface DrillTarget {
  kind: "defect" | "process" | "station" | "product";
  key: string | null;
  from: string;
  to: string;
  line?: string;
}

/** The page listing the LOTs and units behind a bar (`GET /kpi/drilldown`). */
export function drillHref(target: DrillTarget): string {
  const query = new URLSearchParams(
    Object.entries(target).filter((e): e is [string, string] => typeof e[1] === "string" && e[1] !== ""),
  );
  return `#/quality/drill?${query.toString()}`;
}

/** The bar a drill-down page is for, read back from its hash (null when the link is incomplete). */
export function drillTarget(hash: string = window.location.hash): DrillTarget | null {
  const q = hashQuery(hash);
  const kind = q.get("kind");
  const from = q.get("from");
  const to = q.get("to");
  if (!kind || !["defect", "process", "station", "product"].includes(kind) || !from || !to) return null;
  return { kind: kind as DrillTarget["kind"], key: q.get("key"), from, to, line: q.get("line") ?? undefined };
}

export function navigate(route: Route): void {
  window.location.hash = hrefOf(route).slice(1);
}

function subscribe(onChange: () => void): () => void {
  window.addEventListener("hashchange", onChange);
  return () => window.removeEventListener("hashchange", onChange);
}

export function useRoute(): Route {
  const hash = useSyncExternalStore(subscribe, () => window.location.hash);
  return parseRoute(hash);
}
