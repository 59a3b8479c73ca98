// Where a refusal of `PUT /lines/{code}/shifts` belongs in the calendar form, in the user's language.
import type { TFunction } from "i18next";
import type { ApiError } from "../api/client";
import type { Shift } from "../api/types";

/**
 * Messages by the form's field: `effective_from`, `shifts` (the list as a whole), `shifts.<i>` (a row),
 * `shifts.<i>.<field>` (`name`, `start`, `end`, `days`, `planned_output`), or `form` (none of these).
 */
export type FieldErrors = Record<string, string>;

const SHIFT_FIELDS = new Set(["name", "start", "end", "days", "planned_output"]);

/** The form field a validation error's `loc` (`["body", "shifts", 0, "days", 2]`) names: a weekday's index
 *  goes to its list, anything unknown to the form as a whole. */
function fieldOf(loc: unknown[]): string {
  const [list, index, field] = loc[0] === "body" ? loc.slice(1) : loc;
  if (list === "effective_from") return "effective_from";
  if (list !== "shifts") return "form";
  if (typeof index !== "number") return "shifts";
  return typeof field === "string" && SHIFT_FIELDS.has(field) ? `shifts.${index}.${field}` : `shifts.${index}`;
}

/**
 * The kernel's refusal as messages beside the fields it names (`null` when it names none: a network failure,
 * an unknown line — the page shows those as they are):
 * - 422 `VALIDATION_ERROR`: each of `errors[]` at its `loc`, worded by field (`calendar.invalid.<field>`);
 * - 422 `SHIFTS_OVERLAP`: at the list, and at each of the two rows `shifts` names (or "two share a name");
 * - 422 `INVALID_EFFECTIVE_FROM`, 403 `FORBIDDEN` with `field: effective_from` (before today without
 *   `shifts:backdate`): at the date.
 */
export function calendarErrors(error: ApiError, shifts: Shift[], t: TFunction): FieldErrors | null {
  const out: FieldErrors = {};
  const add = (field: string, text: string) => {
    out[field] = out[field] && !out[field].includes(text) ? `${out[field]} ${text}` : text;
  };
  const detail = error.detail;
  if (error.code === "VALIDATION_ERROR" && Array.isArray(detail.errors)) {
    for (const item of detail.errors as { loc?: unknown[]; type?: string }[]) {
      const field = fieldOf(item.loc ?? []);
      const last = field.split(".").at(-1) ?? field;
      const key = item.type === "missing" ? "calendar.invalid.missing" : `calendar.invalid.${last}`;
      add(field, t(key, { defaultValue: t("calendar.invalid.other") }));
    }
    return out;
  }
  if (error.code === "SHIFTS_OVERLAP") {
    const names = Array.isArray(detail.shifts) ? (detail.shifts as string[]) : [];
    if (names.length !== 2) {
      add("shifts", t("calendar.error.sameName"));
      return out;
    }
    add("shifts", t("calendar.error.overlap", { a: names[0], b: names[1] }));
    names.forEach((name, i) => {
      const row = shifts.findIndex((s) => s.name.trim() === name);
      if (row >= 0) add(`shifts.${row}`, t("calendar.error.overlapsWith", { other: names[1 - i] }));
    });
    return out;
  }
  if (error.code === "INVALID_EFFECTIVE_FROM") {
    add("effective_from", t("calendar.invalid.effective_from"));
    return out;
  }
  if (error.status === 403 && detail.field === "effective_from") {
    add("effective_from", t("calendar.error.backdate"));
    return out;
  }
  return null;
}
