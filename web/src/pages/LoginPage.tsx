// The login form (username and password against POST /auth/login).
import { useState, type FormEvent } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { toApiError } from "../api/client";
import { useAuth } from "../store/auth";

const MESSAGES: Record<string, string> = {
  INVALID_CREDENTIALS: "Wrong username or password.",
  RATE_LIMITED: "Too many attempts. Wait a minute and try again.",
  NETWORK_ERROR: "The server cannot be reached.",
};

export function LoginPage() {
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
      setError(MESSAGES[apiError.code] ?? apiError.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box sx={{ minHeight: "100vh", display: "grid", placeItems: "center", bgcolor: "grey.100", p: 2 }}>
      <Paper component="form" onSubmit={submit} sx={{ p: 4, width: "100%", maxWidth: 380 }} aria-label="Log in">
        <Typography variant="h5" component="h1" gutterBottom>
          NeuroHub MES
        </Typography>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
          Production dashboard — log in with your MES account.
        </Typography>
        {notice && !error && <Alert severity="info" sx={{ mb: 2 }}>{notice}</Alert>}
        {error && <Alert severity="error" sx={{ mb: 2 }} role="alert">{error}</Alert>}
        <TextField label="Username" name="username" autoComplete="username" fullWidth margin="normal" required
                   autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
        <TextField label="Password" name="password" type="password" autoComplete="current-password" fullWidth
                   margin="normal" required value={password} onChange={(e) => setPassword(e.target.value)} />
        <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy || !username || !password}>
          {busy ? "Logging in…" : "Log in"}
        </Button>
      </Paper>
    </Box>
  );
}
