// Entry point: theme, baseline styles, the app.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import CssBaseline from "@mui/material/CssBaseline";
import { ThemeProvider, createTheme } from "@mui/material/styles";
import { App } from "./App";

const theme = createTheme({
  palette: { mode: "light", primary: { main: "#1565c0" }, background: { default: "#fafafa" } },
  shape: { borderRadius: 6 },
  components: { MuiTableCell: { styleOverrides: { sizeSmall: { paddingTop: 6, paddingBottom: 6 } } } },
});

createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <ThemeProvider theme={theme}>
      <CssBaseline />
      <App />
    </ThemeProvider>
  </StrictMode>,
);
