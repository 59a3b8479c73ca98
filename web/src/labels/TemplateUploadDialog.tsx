// Upload a plant's ZPL label (a designer's file or pasted text) with the variable fields it declares.
import { useState, type FormEvent } from "react";
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
import type { LabelTemplate, TemplateField } from "../api/types";

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
const PLACEHOLDER = /\{\{\s*([a-z][a-z0-9_]*)\s*\}\}/g;
/** A template's name as the kernel takes it: lower-case letters, digits, '_' or '-'. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The `{{name}}` placeholders of a ZPL text, each once, in order of appearance. */
export function placeholdersOf(zpl: string): string[] {
  return [...new Set([...zpl.matchAll(PLACEHOLDER)].map((m) => m[1]))];
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

  function reset() {
    setName(initialName);
    setTitle("");
    setZpl("");
    setFile(null);
    setRows([]);
    setError(null);
  }

  /** Rows for placeholders not declared yet (a designer's `{{name}}`); `^FN` fields are added by hand. */
  function addPlaceholders(text: string) {
    setRows((current) => {
      const known = new Set(current.map((r) => r.name));
      return [...current, ...placeholdersOf(text).filter((n) => !known.has(n)).map((n) => emptyRow(n))];
    });
  }

  async function pick(picked: File | undefined) {
    if (!picked) return;
    const text = await picked.text();
    setFile(picked);
    setZpl(text);
    if (!name) setName(picked.name.replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9_-]+/g, "_").slice(0, 64));
    addPlaceholders(text);
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
                     value={zpl} onChange={(e) => setZpl(e.target.value)} onBlur={() => addPlaceholders(zpl)}
                     slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: "monospace", fontSize: 13 } } }} />
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
