// One template version drawn twice, side by side: in this browser from the filled ZPL (zpl-renderer-js)
// and by the server (its PNG preview), both from the same sample values.
import { useEffect, useState } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import CircularProgress from "@mui/material/CircularProgress";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import { toApiError } from "../api/client";
import { endpoints } from "../api/endpoints";
import type { LabelTemplate } from "../api/types";
import { hasCjk, renderZpl, type LabelSize } from "./zplRender";

type Drawing = { state: "loading" } | { state: "done"; src: string } | { state: "failed"; message: string };

/** A renderer of filled ZPL to an image URL; the page's is zpl-renderer-js, tests may pass another. */
export type ZplRenderer = (zpl: string, size: LabelSize) => Promise<string>;

function Picture({ drawing, alt, testId, width }: { drawing: Drawing; alt: string; testId: string; width: number }) {
  const { t } = useTranslation();
  if (drawing.state === "loading") {
    return <Box sx={{ py: 4, display: "grid", placeItems: "center" }}><CircularProgress aria-label={t("common.loading")} /></Box>;
  }
  if (drawing.state === "failed") {
    return <Alert severity="warning" data-testid={`${testId}-failed`}>{drawing.message}</Alert>;
  }
  return (
    <Box component="img" src={drawing.src} alt={alt} data-testid={testId}
         sx={{ width: "100%", maxWidth: width, height: "auto", border: 1, borderColor: "divider", bgcolor: "white",
               imageRendering: "pixelated" }} />
  );
}

export function LabelPreview({ template, render = renderZpl }: { template: LabelTemplate; render?: ZplRenderer }) {
  const { t } = useTranslation();
  const [browser, setBrowser] = useState<Drawing>({ state: "loading" });
  const [server, setServer] = useState<Drawing>({ state: "loading" });
  const [cjk, setCjk] = useState(false);
  const { name, version, width, height, dpi } = template;

  useEffect(() => {
    const controller = new AbortController();
    let live = true;
    setBrowser({ state: "loading" });
    setServer({ state: "loading" });
    setCjk(false);
    endpoints.labelPreviewPng(name, version, controller.signal).then(
      (src) => live && setServer({ state: "done", src }),
      (err) => live && setServer({ state: "failed", message: describe(err) }),
    );
    endpoints.labelPreviewZpl(name, version, controller.signal)
      .then(async (zpl) => {
        if (live) setCjk(hasCjk(zpl));
        const src = await render(zpl, { width, height, dpi });
        if (live) setBrowser({ state: "done", src });
      })
      .catch((err) => live && setBrowser({ state: "failed", message: describe(err) }));
    return () => {
      live = false;
      controller.abort();
    };
  }, [name, version, width, height, dpi, render]);

  function describe(err: unknown): string {
    const apiError = toApiError(err);
    return apiError.code === "CLIENT_ERROR" ? t("labels.rendererFailed", { message: apiError.message })
      : `${apiError.message} [${apiError.code}]`;
  }

  const shown = Math.min(width > 0 ? width : 812, 812);
  return (
    <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "1fr", lg: "1fr 1fr" } }} data-testid="label-preview">
      <Paper variant="outlined" sx={{ p: 1.5, m: 0, minWidth: 0 }} component="figure" aria-label={t("labels.inBrowser")}>
        <Typography variant="subtitle2" component="figcaption" sx={{ mb: 1 }}>{t("labels.inBrowser")}</Typography>
        <Picture drawing={browser} alt={t("labels.previewAlt", { name, version })} testId="preview-browser" width={shown} />
        <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }}>
          {t("labels.inBrowserNote")}
        </Typography>
        {cjk && <Alert severity="info" sx={{ mt: 1 }} data-testid="cjk-note">{t("labels.cjkNote")}</Alert>}
      </Paper>
      <Paper variant="outlined" sx={{ p: 1.5, m: 0, minWidth: 0 }} component="figure" aria-label={t("labels.onServer")}>
        <Typography variant="subtitle2" component="figcaption" sx={{ mb: 1 }}>{t("labels.onServer")}</Typography>
        <Picture drawing={server} alt={t("labels.previewServerAlt", { name, version })} testId="preview-server"
                 width={shown} />
        <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }}>
          {t("labels.onServerNote")}
        </Typography>
      </Paper>
    </Box>
  );
}
