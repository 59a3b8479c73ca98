// Label templates: the plant's ZPL labels with their versions and fields, previewed in the browser and
// by the server; upload and retire for users with `labels:templates`.
import { useCallback, useEffect, useState } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControlLabel from "@mui/material/FormControlLabel";
import MenuItem from "@mui/material/MenuItem";
import Switch from "@mui/material/Switch";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableContainer from "@mui/material/TableContainer";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import type { ColumnDef } from "@tanstack/react-table";
import type { TFunction } from "i18next";
import { useTranslation } from "react-i18next";
import { toApiError, type ApiError } from "../api/client";
import { endpoints, keyOf } from "../api/endpoints";
import type { LabelTemplate } from "../api/types";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, NotAvailable, PageTitle, Section, StatusChip, When } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { LabelPreview, type ZplRenderer } from "../labels/LabelPreview";
import { TemplateUploadDialog } from "../labels/TemplateUploadDialog";
import { useCan } from "../store/auth";

const LIST_INTERVAL_MS = 60_000;

function columns(t: TFunction, open: (name: string) => void): ColumnDef<LabelTemplate, any>[] {
  return [
    { accessorKey: "name", header: t("labels.name"), cell: (i) => (
      <Button size="small" onClick={(e) => { e.stopPropagation(); open(i.getValue()); }}
              sx={{ textTransform: "none", fontWeight: 600 }}>{i.getValue()}</Button>) },
    { accessorKey: "title", header: t("labels.title") },
    { accessorKey: "version", header: t("labels.version"), cell: (i) => `v${i.getValue()}` },
    { accessorKey: "status", header: t("labels.status"), cell: (i) => <TemplateStatus status={i.getValue()} /> },
    { id: "fields", header: t("labels.fields"),
      cell: (i) => i.row.original.fields.map((f) => f.name).join(", ") || "—" },
    { accessorKey: "created_at", header: t("labels.created"), cell: (i) => <When at={i.getValue()} /> },
  ];
}

function TemplateStatus({ status }: { status: string }) {
  const { t } = useTranslation();
  return <StatusChip status={status === "active" ? "UP" : "idle"} label={t(`labels.statuses.${status}`, { defaultValue: status })} />;
}

function RetireDialog({ template, onClose, onRetired }: {
  template: LabelTemplate;
  onClose(): void;
  onRetired(): void;
}) {
  const { t } = useTranslation();
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function retire() {
    setBusy(true);
    setError(null);
    try {
      await endpoints.retireLabelTemplate(template.name, reason.trim());
      onRetired();
    } catch (err) {
      const apiError = toApiError(err);
      setError(`${apiError.message} [${apiError.code}]`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog open onClose={onClose} fullWidth maxWidth="xs">
      <DialogTitle>{t("labels.retireTitle", { name: template.name })}</DialogTitle>
      <DialogContent>
        <Typography variant="body2" sx={{ mb: 1 }}>{t("labels.retireHelp")}</Typography>
        {error && <Alert severity="error" role="alert" sx={{ mb: 1 }}>{error}</Alert>}
        <TextField label={t("labels.reason")} fullWidth margin="dense" value={reason}
                   slotProps={{ htmlInput: { maxLength: 500 } }} onChange={(e) => setReason(e.target.value)} />
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>{t("common.cancel")}</Button>
        <Button color="error" variant="contained" onClick={retire} disabled={busy} data-testid="retire-confirm">
          {t("labels.retire")}
        </Button>
      </DialogActions>
    </Dialog>
  );
}

function TemplateDetail({ name, canManage, onChanged, render }: {
  name: string;
  canManage: boolean;
  onChanged(): void;
  render?: ZplRenderer;
}) {
  const { t } = useTranslation();
  const [versions, setVersions] = useState<LabelTemplate[] | null>(null);
  const [version, setVersion] = useState<number | null>(null);
  const [current, setCurrent] = useState<LabelTemplate | null>(null);
  const [error, setError] = useState<ApiError | undefined>();
  const [retiring, setRetiring] = useState(false);
  const [newVersion, setNewVersion] = useState(false);
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setError(undefined);
    endpoints.labelTemplateVersions(name, controller.signal).then((all) => {
      setVersions(all);
      setVersion((v) => (v !== null && all.some((x) => x.version === v) ? v : all[0]?.version ?? null));
    }, (err) => setError(toApiError(err)));
    return () => controller.abort();
  }, [name, reloads]);

  useEffect(() => {
    if (version === null) return;
    const controller = new AbortController();
    endpoints.labelTemplate(name, version, controller.signal).then(setCurrent, (err) => setError(toApiError(err)));
    return () => controller.abort();
  }, [name, version, reloads]);

  const changed = () => {
    setReloads((n) => n + 1);
    onChanged();
  };

  const latest = versions?.[0];
  const action = canManage && latest ? (
    <Box sx={{ display: "flex", gap: 1 }}>
      <Button variant="outlined" onClick={() => setNewVersion(true)}>{t("labels.newVersion")}</Button>
      {latest.status === "active" && (
        <Button variant="outlined" color="error" onClick={() => setRetiring(true)} data-testid="retire">
          {t("labels.retire")}
        </Button>
      )}
    </Box>
  ) : null;

  return (
    <Section title={t("labels.template", { name })} action={action}>
      <ErrorNotice error={error} />
      {versions && versions.length > 0 && (
        <Box sx={{ display: "flex", gap: 2, alignItems: "center", flexWrap: "wrap", mb: 2 }}>
          <TextField select size="small" label={t("labels.version")} value={version ?? ""} sx={{ minWidth: 200 }}
                     onChange={(e) => setVersion(Number(e.target.value))}
                     slotProps={{ htmlInput: { "data-testid": "version-select" } }}>
            {versions.map((v) => (
              <MenuItem key={v.version} value={v.version}>
                {t("labels.versionOption", { version: v.version, status: t(`labels.statuses.${v.status}`,
                                                                               { defaultValue: v.status }) })}
              </MenuItem>
            ))}
          </TextField>
          {current && <TemplateStatus status={current.status} />}
          {current && (
            <Typography variant="body2" color="text.secondary">
              {t("labels.sizeLine", { width: current.width, height: current.height, dpi: current.dpi,
                                      by: current.created_by ?? "—" })}
            </Typography>
          )}
        </Box>
      )}
      {current && current.version === version && (
        <>
          {current.title && <Typography sx={{ mb: 1 }}>{current.title}</Typography>}
          {current.description && <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
            {current.description}</Typography>}
          <LabelPreview template={current} render={render} />
          <Typography variant="subtitle1" component="h3" sx={{ mt: 2 }}>{t("labels.fields")}</Typography>
          <TableContainer data-scroll-container="x">
            <Table size="small" aria-label={t("labels.fields")}>
              <TableHead>
                <TableRow>
                  <TableCell>{t("labels.fieldName")}</TableCell>
                  <TableCell>{t("labels.fieldType")}</TableCell>
                  <TableCell>{t("labels.marker")}</TableCell>
                  <TableCell>{t("labels.required")}</TableCell>
                  <TableCell>{t("labels.maxLength")}</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {current.fields.map((f) => (
                  <TableRow key={f.name}>
                    <TableCell>{f.name}</TableCell>
                    <TableCell>{t(`labels.types.${f.type}`, { defaultValue: f.type })}</TableCell>
                    <TableCell><code>{f.fn !== null ? `^FN${f.fn}` : `{{${f.name}}}`}</code></TableCell>
                    <TableCell>{f.required ? t("common.yes") : t("common.no")}</TableCell>
                    <TableCell>{f.max_length}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </TableContainer>
          {current.zpl !== undefined && (
            <Box component="details" sx={{ mt: 2 }}>
              <Box component="summary" sx={{ cursor: "pointer" }}>{t("labels.zpl")}</Box>
              <Box component="pre" tabIndex={0} sx={{ fontSize: 13, overflow: "auto", maxHeight: 320, bgcolor: "grey.100",
                                         p: 1 }} data-testid="zpl-source" data-scroll-container="x">{current.zpl}</Box>
            </Box>
          )}
        </>
      )}
      {retiring && latest && (
        <RetireDialog template={latest} onClose={() => setRetiring(false)}
                      onRetired={() => { setRetiring(false); changed(); }} />
      )}
      {newVersion && (
        <TemplateUploadDialog open initialName={name} onClose={() => setNewVersion(false)}
                              onUploaded={() => { setNewVersion(false); changed(); }} />
      )}
    </Section>
  );
}

export function LabelTemplatesPage({ render }: { render?: ZplRenderer } = {}) {
  const { t } = useTranslation();
  const canManage = useCan("labels:templates");
  const [showRetired, setShowRetired] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [uploading, setUploading] = useState(false);
  const [uploaded, setUploaded] = useState<LabelTemplate | null>(null);
  const fetcher = useCallback((signal: AbortSignal) => endpoints.labelTemplates(showRetired, signal), [showRetired]);
  const list = usePolling(keyOf("/labels/templates", { include_retired: showRetired || undefined }), fetcher,
                          LIST_INTERVAL_MS);

  if (list.error?.status === 404 && !list.data) return <NotAvailable />;

  const onUploaded = (template: LabelTemplate) => {
    setUploading(false);
    setUploaded(template);
    setSelected(template.name);
    list.refresh();
  };

  return (
    <>
      <PageTitle action={canManage && (
        <Button variant="contained" onClick={() => setUploading(true)} data-testid="upload-open">
          {t("labels.upload")}
        </Button>
      )}>
        {t("labels.heading")}
      </PageTitle>
      <ErrorNotice error={list.error} retryInMs={list.retryInMs} />
      {uploaded && (
        <Alert severity={uploaded.warnings?.length ? "warning" : "success"} sx={{ mb: 2 }}
               onClose={() => setUploaded(null)} data-testid="upload-result">
          {t("labels.uploaded", { name: uploaded.name, version: uploaded.version })}
          {uploaded.warnings && uploaded.warnings.length > 0 && (
            <Box component="ul" sx={{ m: 0, pl: 3 }} data-testid="upload-warnings">
              {uploaded.warnings.map((w) => <li key={w}>{w}</li>)}
            </Box>
          )}
        </Alert>
      )}
      <Section title={t("labels.list")} action={
        <FormControlLabel label={t("labels.showRetired")} control={
          <Switch checked={showRetired} onChange={(e) => setShowRetired(e.target.checked)} />} />
      }>
        <DataTable columns={columns(t, setSelected)} data={list.data ?? []} rowKey={(r) => r.name}
                   onRowClick={(r) => setSelected(r.name)} emptyText={t("labels.none")} label={t("labels.list")} />
      </Section>
      {selected && (
        <TemplateDetail key={selected} name={selected} canManage={canManage} onChanged={list.refresh}
                        render={render} />
      )}
      <TemplateUploadDialog open={uploading} onClose={() => setUploading(false)} onUploaded={onUploaded} />
    </>
  );
}
