// Upload a plant's ZPL label (a designer's file or pasted text) with the variable fields it declares.
// The ZPL is read by the kernel itself (POST /labels/templates/inspect, the reading an upload makes):
// its ^FN fields and {{name}} placeholders are shown before saving, never parsed a second time here.
import { useRef, useState, type FormEvent } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Checkbox from "@mui/material/Checkbox";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControlLabel from "@mui/material/FormControlLabel";
import IconButton from "@mui/material/IconButton";
import MenuItem from "@mui/material/MenuItem";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import { toApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { LabelTemplate, TemplateField, ZplFnField, ZplInspection } from "../api/types";

export const FIELD_TYPES: TemplateField["type"][] = ["text", "lot_number", "serial_number", "product", "date",
                                                      "integer", "gtin"];

/** One row of the fields editor; numbers as typed, so a half-typed row is still editable. */
export interface FieldRow {
  name: string;
  type: TemplateField["type"];
  required: boolean;
  fn: string;
  max_length: string;
}

const NAME = /^[a-z][a-z0-9_]*$/;
/** A template's name as the kernel takes it: lower-case letters, digits, '_' or '-'. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** A field name for a `^FN` field the kernel found: its designer's prompt as a name, else `field_<n>`. */
export function nameForFn(field: ZplFnField, taken: Set<string>): string {
  const fromPrompt = (field.prompt ?? "").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^[^a-z]+|_+$/g, "")
    .slice(0, 64);
  let name = NAME.test(fromPrompt) ? fromPrompt : `field_${field.fn}`;
  for (let i = 2; taken.has(name); i += 1) name = `${fromPrompt && NAME.test(fromPrompt) ? fromPrompt : `field_${field.fn}`}_${i}`;
  return name;
}

/** Which row declares each `^FN` the kernel found, and the rows naming a `^FN` the ZPL lacks. */
export function fnDeclarations(rows: FieldRow[], found: ZplFnField[]): {
  declaredAs: Map<number, string>;
  missing: { name: string; fn: number }[];
} {
  const numbers = new Set(found.map((f) => f.fn));
  const declaredAs = new Map<number, string>();
  const missing: { name: string; fn: number }[] = [];
  for (const row of rows) {
    const fn = row.fn.trim() ? Number(row.fn) : null;
    if (fn === null || !Number.isInteger(fn)) continue;
    if (numbers.has(fn)) declaredAs.set(fn, row.name.trim());
    else missing.push({ name: row.name.trim(), fn });
  }
  return { declaredAs, missing };
}

/** A field's likely type from its name (a LOT number, a serial…); the user may change it. */
export function guessType(name: string): TemplateField["type"] {
  if (name === "lot_number" || name === "lot") return "lot_number";
  if (name === "serial_number" || name === "serial") return "serial_number";
  if (name === "gtin") return "gtin";
  if (name === "product") return "product";
  if (name === "date" || name.endsWith("_date")) return "date";
  if (name === "quantity" || name === "qty") return "integer";
  return "text";
}

/** The declarations sent to the kernel, or the catalog key of what is wrong with the rows. */
export function declarations(rows: FieldRow[]): { fields: Omit<TemplateField, "description">[] } | { error: string; name?: string } {
  const fields: Omit<TemplateField, "description">[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    const name = row.name.trim();
    if (!NAME.test(name)) return { error: "labels.errors.fieldName", name };
    if (seen.has(name)) return { error: "labels.errors.fieldTwice", name };
    seen.add(name);
    const fn = row.fn.trim() ? Number(row.fn) : null;
    if (fn !== null && !(Number.isInteger(fn) && fn >= 1 && fn <= 9999)) return { error: "labels.errors.fn", name };
    const maxLength = row.max_length.trim() ? Number(row.max_length) : 40;
    if (!(Number.isInteger(maxLength) && maxLength >= 1 && maxLength <= 3072)) {
      return { error: "labels.errors.maxLength", name };
    }
    fields.push({ name, type: row.type, required: row.required, fn, max_length: maxLength });
  }
  return { fields };
}

function emptyRow(name = ""): FieldRow {
  return { name, type: guessType(name), required: true, fn: "", max_length: "40" };
}

export function TemplateUploadDialog({ open, onClose, onUploaded, initialName = "" }: {
  open: boolean;
  onClose(): void;
  onUploaded(template: LabelTemplate): void;
  /** A new version of this template (the name is then fixed). */
  initialName?: string;
}) {
  const { t } = useTranslation();
  const [name, setName] = useState(initialName);
  const [title, setTitle] = useState("");
  const [zpl, setZpl] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [rows, setRows] = useState<FieldRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [inspection, setInspection] = useState<ZplInspection | null>(null);
  const [inspectError, setInspectError] = useState<string | null>(null);
  const [inspecting, setInspecting] = useState(false);
  /** The ZPL text of the last inspection asked for: an older answer arriving late is dropped. */
  const inspected = useRef<string | null>(null);

  function reset() {
    setName(initialName);
    setTitle("");
    setZpl("");
    setFile(null);
    setRows([]);
    setError(null);
    setInspection(null);
    setInspectError(null);
    inspected.current = null;
  }

  /** Ask the kernel what it reads in `text`; rows are added for placeholders not declared yet. */
  async function inspect(text: string) {
    if (!text.trim() || inspected.current === text) return;
    inspected.current = text;
    setInspecting(true);
    try {
      const seen = await endpoints.inspectLabelZpl(text);
      if (inspected.current !== text) return;
      setInspection(seen);
      setInspectError(null);
      setRows((current) => {
        const known = new Set(current.map((r) => r.name));
        return [...current, ...seen.placeholders.filter((n) => !known.has(n)).map((n) => emptyRow(n))];
      });
    } catch (err) {
      if (inspected.current !== text) return;
      const apiError = toApiError(err);
      const detail = apiError.detail;
      const at = typeof detail.command === "string"
        ? ` — ${t("labels.at", { command: detail.command, offset: detail.offset ?? "?" })}` : "";
      setInspection(null);
      setInspectError(`${t("labels.inspectFailed", { message: apiError.message })}${at} [${apiError.code}]`);
    } finally {
      if (inspected.current === text) setInspecting(false);
    }
  }

  function declareFn(field: ZplFnField) {
    setRows((current) => {
      const row = emptyRow(nameForFn(field, new Set(current.map((r) => r.name))));
      const kind = field.kinds.find((k) => k !== "text");
      return [...current, { ...row, fn: String(field.fn), type: kind === "ean13" || kind === "upca" ? "gtin" : row.type }];
    });
  }

  async function pick(picked: File | undefined) {
    if (!picked) return;
    const text = await picked.text();
    setFile(picked);
    setZpl(text);
    if (!name) setName(picked.name.replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9_-]+/g, "_").slice(0, 64));
    await inspect(text);
  }

  function update(index: number, patch: Partial<FieldRow>) {
    setRows((current) => current.map((row, i) => (i === index ? { ...row, ...patch } : row)));
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (!TEMPLATE_NAME.test(name.trim())) {
      setError(t("labels.errors.templateName"));
      return;
    }
    const declared = declarations(rows);
    if ("error" in declared) {
      setError(t(declared.error, { name: declared.name || "—" }));
      return;
    }
    setBusy(true);
    try {
      const upload = { name: name.trim(), zpl, fields: declared.fields, title: title.trim() };
      // a picked file goes as it is, unless the text was edited after picking it
      const asFile = file && (await file.text()) === zpl ? file : undefined;
      const template = await endpoints.uploadLabelTemplate(upload, asFile);
      reset();
      onUploaded(template);
    } catch (err) {
      const apiError = toApiError(err);
      const detail = apiError.detail;
      const where = typeof detail.field === "string" ? ` (${detail.field})` : "";
      const at = typeof detail.command === "string"
        ? ` — ${t("labels.at", { command: detail.command, offset: detail.offset ?? "?" })}` : "";
      setError(`${apiError.message}${where}${at} [${apiError.code}]`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog open={open} onClose={onClose} fullWidth maxWidth="md">
      <form onSubmit={submit} aria-label={t("labels.upload")}>
        <DialogTitle>{initialName ? t("labels.newVersionOf", { name: initialName }) : t("labels.upload")}</DialogTitle>
        <DialogContent>
          {error && <Alert severity="error" role="alert" sx={{ mb: 1 }} data-testid="upload-error">{error}</Alert>}
          <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
            <TextField label={t("labels.name")} name="name" required margin="dense" sx={{ flex: "1 1 200px" }}
                       value={name} disabled={!!initialName} onChange={(e) => setName(e.target.value)}
                       helperText={t("labels.nameHelp")} />
            <TextField label={t("labels.title")} name="title" margin="dense" sx={{ flex: "2 1 280px" }}
                       value={title} onChange={(e) => setTitle(e.target.value)}
                       slotProps={{ htmlInput: { maxLength: 200 } }} />
          </Box>
          <Box sx={{ display: "flex", gap: 2, alignItems: "center", my: 1, flexWrap: "wrap" }}>
            <Button variant="outlined" component="label">
              {t("labels.chooseFile")}
              <input type="file" hidden accept=".zpl,.prn,.txt,text/plain" data-testid="zpl-file"
                     onChange={(e) => void pick(e.target.files?.[0])} />
            </Button>
            <Typography variant="body2" color="text.secondary" data-testid="picked-file">
              {file ? file.name : t("labels.orPaste")}
            </Typography>
          </Box>
          <TextField label={t("labels.zpl")} name="zpl" required fullWidth multiline minRows={6} maxRows={14}
                     value={zpl} onChange={(e) => setZpl(e.target.value)} onBlur={() => void inspect(zpl)}
                     slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: "monospace", fontSize: 13 } } }} />
          <Detected inspection={inspection} failed={inspectError} busy={inspecting} rows={rows} onDeclare={declareFn} />
          <Box sx={{ display: "flex", alignItems: "center", mt: 2, mb: 1, gap: 1 }}>
            <Typography variant="subtitle1" component="h3" sx={{ flexGrow: 1 }}>{t("labels.fields")}</Typography>
            <Button onClick={() => setRows((r) => [...r, emptyRow()])}>{t("labels.addField")}</Button>
          </Box>
          <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>{t("labels.fieldsHelp", { placeholder: "{{name}}" })}</Typography>
          {rows.map((row, i) => (
            <Box key={i} sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mb: 1 }}
                 data-testid={`field-row-${i}`}>
              <TextField size="small" label={t("labels.fieldName")} value={row.name} sx={{ flex: "1 1 150px" }}
                         onChange={(e) => update(i, { name: e.target.value })} />
              <TextField select size="small" label={t("labels.fieldType")} value={row.type} sx={{ minWidth: 150 }}
                         onChange={(e) => update(i, { type: e.target.value as TemplateField["type"] })}>
                {FIELD_TYPES.map((type) => <MenuItem key={type} value={type}>{t(`labels.types.${type}`)}</MenuItem>)}
              </TextField>
              <TextField size="small" label={t("labels.fn")} value={row.fn} sx={{ width: 90 }}
                         slotProps={{ htmlInput: { inputMode: "numeric" } }}
                         onChange={(e) => update(i, { fn: e.target.value })} />
              <TextField size="small" label={t("labels.maxLength")} value={row.max_length} sx={{ width: 110 }}
                         slotProps={{ htmlInput: { inputMode: "numeric" } }}
                         onChange={(e) => update(i, { max_length: e.target.value })} />
              <FormControlLabel label={t("labels.required")} control={
                <Checkbox checked={row.required} onChange={(e) => update(i, { required: e.target.checked })} />} />
              <IconButton aria-label={t("labels.removeField", { name: row.name || i + 1 })}
                          onClick={() => setRows((r) => r.filter((_, j) => j !== i))}>
                <span aria-hidden="true">×</span>
              </IconButton>
            </Box>
          ))}
        </DialogContent>
        <DialogActions>
          <Button onClick={() => { reset(); onClose(); }}>{t("common.cancel")}</Button>
          <Button type="submit" variant="contained" disabled={busy || !zpl.trim() || !name.trim()}
                  data-testid="upload-submit">
            {t("labels.uploadSubmit")}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

/** What the kernel read in the ZPL: each `^FN` field (declared by which row, or a button to declare it),
 *  the placeholders, and the rows naming a `^FN` the file lacks. */
function Detected({ inspection, failed, busy, rows, onDeclare }: {
  inspection: ZplInspection | null;
  failed: string | null;
  busy: boolean;
  rows: FieldRow[];
  onDeclare(field: ZplFnField): void;
}) {
  const { t } = useTranslation();
  if (failed) {
    return <Alert severity="warning" sx={{ mt: 2 }} data-testid="inspect-error">{failed}</Alert>;
  }
  if (!inspection) {
    return busy ? <Typography variant="body2" color="text.secondary" sx={{ mt: 2 }}>{t("labels.inspecting")}</Typography>
      : null;
  }
  const { declaredAs, missing } = fnDeclarations(rows, inspection.fn_fields);
  const nothing = inspection.fn_fields.length === 0 && inspection.placeholders.length === 0;
  return (
    <Box component="section" aria-label={t("labels.detected")} data-testid="zpl-detected" sx={{ mt: 2 }}>
      <Typography variant="subtitle1" component="h3">{t("labels.detected")}</Typography>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
        {nothing ? t("labels.detectedNone") : t("labels.detectedHelp")}
      </Typography>
      {inspection.fn_fields.length > 0 && (
        <Box component="ul" sx={{ m: 0, pl: 2 }}>
          {inspection.fn_fields.map((field) => {
            const declared = declaredAs.get(field.fn);
            const facts = [
              field.prompt ? t("labels.fnPrompt", { prompt: field.prompt }) : null,
              field.kinds.join(", "),
              field.uses > 1 ? t("labels.fnUses", { count: field.uses }) : null,
              field.default ? t("labels.fnDefault", { value: field.default }) : null,
            ].filter(Boolean);
            return (
              <Box component="li" key={field.fn} data-testid={`detected-fn-${field.fn}`} sx={{ mb: 0.5 }}>
                <code>{t("labels.detectedFn", { fn: field.fn })}</code>{" "}
                <Typography component="span" variant="body2">{facts.join(" · ")}</Typography>{" — "}
                {declared
                  ? <Typography component="span" variant="body2" color="success.main">
                      {t("labels.fnDeclaredAs", { name: declared })}
                    </Typography>
                  : <>
                      <Typography component="span" variant="body2" color="warning.main">
                        {t("labels.fnUndeclared")}
                      </Typography>{" "}
                      <Button size="small" onClick={() => onDeclare(field)}>
                        {t("labels.declareFn", { fn: field.fn })}
                      </Button>
                    </>}
              </Box>
            );
          })}
        </Box>
      )}
      {inspection.placeholders.length > 0 && (
        <Typography variant="body2" data-testid="detected-placeholders">
          {t("labels.placeholdersFound")}: {inspection.placeholders.map((p) => `{{${p}}}`).join(" ")}
        </Typography>
      )}
      {missing.map((m) => (
        <Alert severity="warning" key={`${m.name}-${m.fn}`} sx={{ mt: 1 }} data-testid="fn-missing">
          {t("labels.fnMissing", { name: m.name || "—", fn: m.fn })}
        </Alert>
      ))}
    </Box>
  );
}
