// Reading a panel's JSON by its declared options: where the value, rows, series and columns are.

import type { Panel } from "../api/types";
import i18n from "../i18n";
import { formatDateTime, formatDuration, formatNumber, formatPercent, formatTime } from "../i18n/format";

export type Json = unknown;

/** The value at a dotted path (`a.b.0.c`); an empty path is the whole document. */
export function pick(data: Json, path: string | undefined | null): Json {
  if (!path) return data;
  let node: Json = data;
  for (const part of path.split(".")) {
    if (node === null || node === undefined) return undefined;
    if (Array.isArray(node)) node = node[Number(part)];
    else if (typeof node === "object") node = (node as Record<string, Json>)[part];
    else return undefined;
  }
  return node;
}

function str(options: Record<string, unknown>, key: string): string | undefined {
  const v = options[key];
  return typeof v === "string" ? v : undefined;
}

/** Rows of a list panel: `options.items` names the array; a bare array answer is used as is. */
export function rowsOf(data: Json, options: Record<string, unknown>): Record<string, Json>[] {
  const path = str(options, "items");
  let node = pick(data, path);
  if (!path && !Array.isArray(node)) node = pick(data, "items");
  return Array.isArray(node) ? node.filter((r): r is Record<string, Json> => !!r && typeof r === "object") : [];
}

/** A panel value by its declared format, through the one formatter the whole dashboard uses. */
export function formatValue(value: Json, format?: string): string {
  if (value === null || value === undefined || value === "") return "—";
  if (format === "percent" && typeof value === "number") return formatPercent(value);
  if (format === "datetime" && (typeof value === "string" || typeof value === "number")) return formatDateTime(value);
  if (format === "seconds" && typeof value === "number") return formatDuration(value);
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return i18n.t(value ? "common.yes" : "common.no");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** "42 sec", "5 min", "3 hr 10 min", "2 days 4 hr" (words per the user's language). */
export const formatAge = formatDuration;

export interface StatView {
  value: string;
  caption: string | null;
}

/** A stat panel: `options.value` (path), `options.format`, `options.caption` ("{a} of {b}"). */
export function statOf(data: Json, options: Record<string, unknown>): StatView {
  const format = str(options, "format");
  const value = formatValue(pick(data, str(options, "value") ?? "value"), format);
  const template = str(options, "caption");
  const caption = template ? template.replace(/\{([^}]+)\}/g, (_, key: string) => formatValue(pick(data, key))) : null;
  return { value, caption };
}

export interface SeriesView {
  x: string;
  series: string[];
  rows: Record<string, Json>[];
  /** each series' legend label (its name when the panel gives none) */
  labels?: Record<string, string>;
}

/**
 * The panel in the reader's language: its title, a stat's caption, a chart's series names (as legend
 * labels, `options.series_labels`; the data keys stay) and a table's column titles, through the
 * plugin's `translations[language]` catalogue ("ko-KR" reads "ko"); a text without an entry stays.
 */
export function localizePanel(panel: Panel, language: string): Panel {
  const catalogue = panel.translations?.[language] ?? panel.translations?.[language.split("-")[0]];
  if (!catalogue) return panel;
  const tr = (text: string) => catalogue[text] || text;
  const options: Record<string, unknown> = { ...(panel.options ?? {}) };
  if (typeof options.caption === "string") options.caption = tr(options.caption);
  if (Array.isArray(options.series)) {
    options.series_labels = Object.fromEntries(
      options.series.filter((s): s is string => typeof s === "string").map((s) => [s, tr(s)]),
    );
  }
  if (Array.isArray(options.columns)) {
    // a column's values are worded from the same catalogue when it says so (`translate`, `code`)
    options.columns = options.columns.map((c) =>
      c && typeof c === "object" && typeof (c as ColumnSpec).title === "string"
        ? { ...(c as ColumnSpec), title: tr((c as ColumnSpec).title), words: catalogue }
        : c,
    );
  }
  return { ...panel, title: tr(panel.title), options };
}

/**
 * A timeseries or bar panel. Timeseries: `options.x` and `options.series` (keys). Bar: `options.label`
 * and `options.value` (or `series`). Without them, the first text key is the axis and every numeric
 * key a series.
 */
export function seriesOf(data: Json, options: Record<string, unknown>, kind: "timeseries" | "bar"): SeriesView {
  const rows = rowsOf(data, options);
  const first = rows[0] ?? {};
  const x = str(options, kind === "bar" ? "label" : "x") ?? str(options, "x") ??
    Object.keys(first).find((k) => typeof first[k] === "string") ?? "x";
  let series: string[] = [];
  if (Array.isArray(options.series)) series = options.series.filter((s): s is string => typeof s === "string");
  else if (str(options, "value")) series = [str(options, "value") as string];
  else series = Object.keys(first).filter((k) => k !== x && typeof first[k] === "number");
  const given = options.series_labels;
  if (!given || typeof given !== "object") return { x, series, rows };
  const named = given as Record<string, unknown>;
  const labels = Object.fromEntries(series.map((s) => [s, typeof named[s] === "string" ? (named[s] as string) : s]));
  return { x, series, rows, labels };
}

export interface ColumnSpec {
  key: string;
  title: string;
  format?: string;
  /** The cell's value is a word of the plugin's catalogue ("critical" → "심각"). */
  translate?: boolean;
  /** Path in the row to a stable code whose catalogue entry words the cell, `{name}` placeholders filled from
   *  the object at `params` ("detail.code", "detail"); a code without an entry shows the value. */
  code?: string;
  params?: string;
  /** The reader's catalogue, set by `localizePanel`. */
  words?: Record<string, string>;
}

/** A table cell as the reader reads it: by the column's code or word in the plugin's catalogue, else formatted. */
export function cellText(row: Record<string, Json>, column: ColumnSpec): string {
  const words = column.words ?? {};
  const code = column.code ? pick(row, column.code) : undefined;
  if (typeof code === "string" && words[code]) {
    const params = pick(row, column.params ?? "");
    return words[code].replace(/\{([^}]+)\}/g, (_, key: string) => formatValue(pick(params, key)));
  }
  const value = row[column.key];
  if (column.translate && typeof value === "string" && words[value]) return words[value];
  return formatValue(value, column.format);
}

/** A table panel's columns: `options.columns` ([{key, title, format}] or keys), else the first row's keys. */
export function columnsOf(rows: Record<string, Json>[], options: Record<string, unknown>): ColumnSpec[] {
  if (Array.isArray(options.columns)) {
    return options.columns.flatMap((c): ColumnSpec[] => {
      if (typeof c === "string") return [{ key: c, title: c }];
      if (c && typeof c === "object" && typeof (c as ColumnSpec).key === "string") {
        const spec = c as ColumnSpec;
        return [{ ...spec, title: spec.title ?? spec.key }];
      }
      return [];
    });
  }
  return Object.keys(rows[0] ?? {}).map((key) => ({ key, title: key }));
}

/** Short axis label for ISO timestamps ("14:00"), the text itself otherwise. */
export function axisLabel(value: Json): string {
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) {
    const date = new Date(value);
    if (!Number.isNaN(date.getTime())) {
      return formatTime(date);
    }
  }
  return formatValue(value);
}
