// What the kernel writes in English for its logs, webhooks and mails — alerts, breaker failures, plugin states —
// worded in the reader's language from the stable codes its answers carry beside the English text.
import type { TFunction } from "i18next";
import type { Alert, PluginRecord } from "../api/types";
import { formatDateTime, formatDuration, formatNumber, formatSeconds } from "./format";
import i18n from "./index";

/**
 * A device failure as a breaker records it (`"<ExceptionClass>: <the driver's words>"`, `last_failure_reason`):
 * the kind of failure by its class (`failure.ConnectionRefusedError` …; another class: "device error"). The
 * driver's own words are a technician's detail, for a tooltip. Empty → "—".
 */
export function failureText(reason: string | null | undefined, t: TFunction): string {
  const text = (reason ?? "").trim();
  if (!text) return "—";
  const kind = /^([A-Za-z_][\w.]*)(?::|$)/.exec(text)?.[1]?.split(".").at(-1) ?? "";
  return t(`failure.${kind}`, { defaultValue: t("failure.other") });
}

/**
 * An alert's text in the reader's language from its `detail.code` (`BREAKER_OPEN`, `STATION_SILENT`,
 * `STATION_BACKLOG`) and the values beside it; an alert without a known code (raised before the codes, or by
 * a plugin) shows its `message`.
 */
export function alertText(alert: Alert, t: TFunction): string {
  const detail = alert.detail ?? {};
  const code = typeof detail.code === "string" ? detail.code : "";
  // a silence names the line it counts against (kernels before that name none)
  const onLine = code === "STATION_SILENT" && typeof detail.line === "string";
  const key = `alerts.code.${onLine ? "STATION_SILENT_ON_LINE" : code}`;
  if (!code || !i18n.exists(key)) return alert.message;
  const number = (value: unknown) => (typeof value === "number" ? formatNumber(value) : "?");
  return t(key, {
    breaker: detail.breaker, station: detail.station, line: detail.line,
    failures: number(detail.failures), queued: number(detail.queued),
    silent: typeof detail.silent_seconds === "number" ? formatDuration(detail.silent_seconds) : "?",
    reason: failureText(detail.reason as string | undefined, t),
  });
}

/** Who raised an alert (`breaker`, `station` …) in the reader's language; an unknown source as it is. */
export function alertSource(source: string, t: TFunction): string {
  return t(`alerts.source.${source}`, { defaultValue: source });
}

/** A bundled plugin's name for people ("Label printers"); another plugin's identifier as it is. */
export function pluginTitle(name: string, t: TFunction): string {
  return t(`devices.pluginTitle.${name}`, { defaultValue: name });
}

/**
 * Why a plugin does not serve, from its `reason_code` and `reason_params` (`devices.pluginReason.<code>`); an
 * administrator's reason for switching it off is shown as typed; a kernel without codes: its `reason`.
 */
export function pluginReason(plugin: PluginRecord, t: TFunction): string {
  const code = plugin.reason_code;
  if (!code) return plugin.reason ?? "—";
  const params = plugin.reason_params ?? {};
  const key = code === "SWITCHED_OFF" && !plugin.reason?.trim() ? "devices.pluginReason.SWITCHED_OFF_UNSAID"
    : `devices.pluginReason.${code}`;
  if (!i18n.exists(key)) return plugin.reason ?? "—";
  return t(key, { ...params, reason: plugin.reason ?? "", error: failureText(String(params.error ?? ""), t) });
}

/** A reason as the health tree carries it (`/health` nodes, a plugin's per-device entries): English `reason` for logs
 *  and API users, and — from a kernel and plugins that give one — a stable `reason_code` with its `reason_params`. */
export interface HealthReason {
  reason?: string | null;
  reason_code?: string | null;
  reason_params?: Record<string, unknown> | null;
  /** Set on the entries of a `problems` list that name their device. */
  device?: string;
}

function isReason(value: unknown): value is HealthReason {
  return typeof value === "object" && value !== null && ("reason" in value || "reason_code" in value);
}

/** A value a reason names, in the reader's words: an exception by its kind (`error`), times and counts for the
 *  locale, lists of reasons each worded in turn, lists of names joined. */
function reasonValue(name: string, value: unknown, t: TFunction): string {
  if (value === null || value === undefined || value === "") return "—";
  if (name === "error") return failureText(String(value), t);
  if (name === "seconds" && typeof value === "number") return formatSeconds(value);
  if (name === "at") return formatDateTime(String(value));
  if (Array.isArray(value)) {
    return value.map((item) => (isReason(item)
      ? `${item.device ? `${item.device}: ` : ""}${healthReason(item, t)}` : String(item))).join("; ");
  }
  if (typeof value === "number") return formatNumber(value);
  return String(value);
}

/**
 * Why a health node is not UP, in the reader's language: by its `reason_code` (`health.reason.<code>`, or a
 * plugin's state, `devices.pluginReason.<code>`) with its `reason_params`; a reason without a known code (a
 * third-party plugin's, an older kernel's) as the English it came in. Nothing: "—".
 */
export function healthReason(node: HealthReason | null | undefined, t: TFunction): string {
  const code = node?.reason_code;
  const key = code && [`health.reason.${code}`, `devices.pluginReason.${code}`].find((k) => i18n.exists(k));
  if (!key) return node?.reason || "—";
  const params = node?.reason_params ?? {};
  const words = Object.fromEntries(Object.entries(params).map(([name, value]) => [name, reasonValue(name, value, t)]));
  return t(key, { ...words, reason: node?.reason ?? "" });
}

/** A health check's name for people ("printers" → "Label printers"); another plugin's check name as it is. */
export function checkTitle(name: string, t: TFunction): string {
  return t(`devices.check.${name}`, { defaultValue: name });
}
