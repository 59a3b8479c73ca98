// The form for a new version of a line's shift calendar: its shifts and the date it applies from; the kernel's
// refusals shown beside the fields they name.
import { useState } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import FormHelperText from "@mui/material/FormHelperText";
import TextField from "@mui/material/TextField";
import ToggleButton from "@mui/material/ToggleButton";
import ToggleButtonGroup from "@mui/material/ToggleButtonGroup";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import { toApiError, type ApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { Shift, ShiftCalendar } from "../api/types";
import { ErrorNotice, Section } from "../components/common";
import { formatWeekday } from "../i18n/format";
import { calendarErrors, type FieldErrors } from "./calendarErrors";

const WEEKDAYS = [0, 1, 2, 3, 4, 5, 6];
/** A picked weekday filled, the others plain, both in colours that read (MUI's greyed text falls short of 4.5:1). */
const DAY_STYLE = {
  minWidth: 44, color: "text.primary",
  "&.Mui-selected, &.Mui-selected:hover": { color: "primary.contrastText", bgcolor: "primary.main" },
};

/** A shift as typed: the planned output is text until sent. */
interface DraftShift extends Omit<Shift, "planned_output"> {
  planned_output: string;
}

const draftOf = (shifts: Shift[]): DraftShift[] =>
  shifts.map((s) => ({ ...s, days: [...s.days], planned_output: String(s.planned_output) }));

/** The shifts to send: names trimmed, the planned output a number when it reads as one (else as typed, so the
 *  kernel names the field). */
export function shiftsOf(draft: DraftShift[]): Shift[] {
  return draft.map((s) => {
    const text = s.planned_output.trim();
    const number = text === "" ? Number.NaN : Number(text);
    return { name: s.name.trim(), start: s.start, end: s.end, days: [...s.days].sort((a, b) => a - b),
             planned_output: Number.isFinite(number) ? number : (text as unknown as number) };
  });
}

function ShiftRow({ shift, index, errors, onChange, onRemove }: {
  shift: DraftShift; index: number; errors: FieldErrors;
  onChange(next: DraftShift): void; onRemove(): void;
}) {
  const { t } = useTranslation();
  const at = (field: string) => errors[`shifts.${index}.${field}`];
  const field = (name: "name" | "start" | "end" | "planned_output", type = "text") => (
    <TextField size="small" type={type} label={t(`calendar.field.${name}`)} value={shift[name]}
               error={!!at(name)} helperText={at(name)}
               onChange={(e) => onChange({ ...shift, [name]: e.target.value })}
               slotProps={{ inputLabel: { shrink: true },
                            htmlInput: { "data-testid": `shift-${index}-${name}`,
                                         ...(type === "number" ? { min: 0, step: 1 } : {}) } }} />
  );
  const rowError = errors[`shifts.${index}`];
  return (
    <Box component="fieldset" data-testid={`shift-${index}`}
         sx={{ border: 1, borderColor: rowError ? "error.main" : "divider", borderRadius: 1, p: 1.5, m: 0, minWidth: 0 }}>
      <Typography component="legend" variant="caption" sx={{ px: 0.5 }}>
        {t("calendar.shiftN", { n: index + 1 })}
      </Typography>
      <Box sx={{ display: "grid", gap: 1.5, alignItems: "start",
                 gridTemplateColumns: { xs: "1fr 1fr", md: "minmax(8rem, 2fr) 8rem 8rem minmax(8rem, 1fr) auto" } }}>
        <Box sx={{ gridColumn: { xs: "1 / -1", md: "auto" } }}>{field("name")}</Box>
        {field("start", "time")}
        {field("end", "time")}
        {field("planned_output", "number")}
        <Button color="error" onClick={onRemove} sx={{ alignSelf: "center" }}>
          {t("calendar.remove")}
        </Button>
      </Box>
      <Box sx={{ mt: 1.5 }}>
        <ToggleButtonGroup size="small" value={shift.days} aria-label={t("calendar.field.days")}
                           onChange={(_, days: number[]) => onChange({ ...shift, days })}
                           sx={{ flexWrap: "wrap" }} data-testid={`shift-${index}-days`}>
          {WEEKDAYS.map((d) => (
            <ToggleButton key={d} value={d} sx={DAY_STYLE}>{formatWeekday(d)}</ToggleButton>
          ))}
        </ToggleButtonGroup>
        {at("days") && <FormHelperText error>{at("days")}</FormHelperText>}
      </Box>
      {rowError && <FormHelperText error data-testid={`shift-${index}-error`}>{rowError}</FormHelperText>}
    </Box>
  );
}

/**
 * A new version of `calendar`'s line, from the shifts in force now: add, change or remove shifts, pick the
 * date it applies from (empty: the current hour), save (`PUT /lines/{code}/shifts`); `onSaved` gets the answer.
 */
export function ShiftCalendarEditor({ calendar, onSaved }: {
  calendar: ShiftCalendar; onSaved(next: ShiftCalendar): void;
}) {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<DraftShift[]>(() => draftOf(calendar.shifts));
  const [effectiveFrom, setEffectiveFrom] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [failure, setFailure] = useState<ApiError>();
  const [saving, setSaving] = useState(false);

  const save = async () => {
    const shifts = shiftsOf(draft);
    setSaving(true);
    setErrors({});
    setFailure(undefined);
    try {
      onSaved(await endpoints.saveShiftCalendar(calendar.line, {
        shifts, ...(effectiveFrom ? { effective_from: effectiveFrom } : {}) }));
    } catch (error) {
      const apiError = toApiError(error);
      const fields = calendarErrors(apiError, shifts, t);
      if (fields) setErrors(fields);
      else setFailure(apiError);
    } finally {
      setSaving(false);
    }
  };
  const change = (i: number) => (next: DraftShift) => setDraft(draft.map((s, j) => (j === i ? next : s)));
  const blank: DraftShift = { name: "", start: "06:00", end: "14:00", days: [0, 1, 2, 3, 4], planned_output: "0" };

  return (
    <Section title={t("calendar.newVersion")}>
      <Box component="form" noValidate onSubmit={(e) => { e.preventDefault(); void save(); }}
           sx={{ display: "flex", flexDirection: "column", gap: 2 }}>
        <TextField size="small" type="date" label={t("calendar.effectiveFrom")} value={effectiveFrom}
                   onChange={(e) => setEffectiveFrom(e.target.value)} sx={{ maxWidth: 260 }}
                   error={!!errors.effective_from}
                   helperText={errors.effective_from ?? t("calendar.effectiveFromHelp", { zone: calendar.timezone })}
                   slotProps={{ inputLabel: { shrink: true }, htmlInput: { "data-testid": "effective-from" } }} />
        {errors.shifts && <Alert severity="error" data-testid="shifts-error">{errors.shifts}</Alert>}
        {errors.form && <Alert severity="error">{errors.form}</Alert>}
        {draft.length === 0 && <Typography color="text.secondary">{t("calendar.noShiftsDraft")}</Typography>}
        {draft.map((shift, i) => (
          <ShiftRow key={i} shift={shift} index={i} errors={errors} onChange={change(i)}
                    onRemove={() => setDraft(draft.filter((_, j) => j !== i))} />
        ))}
        <ErrorNotice error={failure} />
        <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
          <Button variant="outlined" onClick={() => setDraft([...draft, blank])}>{t("calendar.addShift")}</Button>
          <Button variant="contained" type="submit" disabled={saving}>{t("calendar.save")}</Button>
        </Box>
      </Box>
    </Section>
  );
}
