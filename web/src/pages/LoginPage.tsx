// The login form (username and password against POST /auth/login).
import { useState, type FormEvent } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { toApiError } from "../api/client";
import { useTranslation } from "react-i18next";
import { useAuth } from "../store/auth";

/** Error codes the form explains in the user's words (catalog keys). */
const MESSAGES: Record<string, string> = {
  INVALID_CREDENTIALS: "login.invalidCredentials",
  RATE_LIMITED: "login.rateLimited",
  NETWORK_ERROR: "login.networkError",
};

export function LoginPage() {
  const { t } = useTranslation();
  const login = useAuth((s) => s.login);
  const notice = useAuth((s) => s.notice);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
    } catch (err) {
      const apiError = toApiError(err);
      setError(MESSAGES[apiError.code] ? t(MESSAGES[apiError.code]) : apiError.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box component="main" sx={{ minHeight: "100vh", display: "grid", placeItems: "center", bgcolor: "grey.100", p: 2 }}>
      <Paper component="form" onSubmit={submit} sx={{ p: 4, width: "100%", maxWidth: 380 }} aria-label={t("login.title")}>
        <Typography variant="h5" component="h1" gutterBottom>
          {t("app.name")}
        </Typography>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
          {t("login.intro")}
        </Typography>
        {notice && !error && <Alert severity="info" sx={{ mb: 2 }}>{t(notice.key, notice.params ?? {})}</Alert>}
        {error && <Alert severity="error" sx={{ mb: 2 }} role="alert">{error}</Alert>}
        <TextField label={t("login.username")} name="username" autoComplete="username" fullWidth margin="normal" required
                   autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
        <TextField label={t("login.password")} name="password" type="password" autoComplete="current-password" fullWidth
                   margin="normal" required value={password} onChange={(e) => setPassword(e.target.value)} />
        <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy || !username || !password}>
          {busy ? t("login.busy") : t("login.title")}
        </Button>
      </Paper>
    </Box>
  );
}
