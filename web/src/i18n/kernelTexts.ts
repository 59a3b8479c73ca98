// What the kernel writes in English for its logs, webhooks and mails — alerts, breaker failures, plugin states —
// worded in the reader's language from the stable codes its answers carry beside the English text.
import type { TFunction } from "i18next";
import type { Alert, PluginRecord } from "../api/types";
import { formatDuration, formatNumber } from "./format";
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
  const key = `alerts.code.${code}`;
  if (!code || !i18n.exists(key)) return alert.message;
  const number = (value: unknown) => (typeof value === "number" ? formatNumber(value) : "?");
  return t(key, {
    breaker: detail.breaker, station: detail.station,
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
