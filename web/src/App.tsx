// The shell: login gate, top bar with the pages this user may see, the alerts feed, the page itself.
import { useCallback, useEffect } from "react";
import AppBar from "@mui/material/AppBar";
import Badge from "@mui/material/Badge";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import CircularProgress from "@mui/material/CircularProgress";
import Container from "@mui/material/Container";
import Tab from "@mui/material/Tab";
import Tabs from "@mui/material/Tabs";
import Toolbar from "@mui/material/Toolbar";
import Typography from "@mui/material/Typography";
import Alert from "@mui/material/Alert";
import { endpoints } from "./api/endpoints";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { usePolling } from "./hooks/usePolling";
import { AlertsPage, ALERTS_INTERVAL_MS } from "./pages/AlertsPage";
import { AuditPage } from "./pages/AuditPage";
import { DevicesPage } from "./pages/DevicesPage";
import { LoginPage } from "./pages/LoginPage";
import { LotDetailPage } from "./pages/LotDetailPage";
import { LotsPage } from "./pages/LotsPage";
import { OverviewPage } from "./pages/OverviewPage";
import { UnitPage } from "./pages/UnitPage";
import { hrefOf, useRoute, type Route } from "./router";
import { useAlerts } from "./store/alerts";
import { useAuth, useCan } from "./store/auth";

interface NavItem {
  route: Route;
  label: string;
  /** The permission that shows the page; null for every logged-in user. */
  permission: string | null;
}

export const NAV: NavItem[] = [
  { route: { name: "overview" }, label: "Overview", permission: "dashboard:read" },
  { route: { name: "lots" }, label: "LOTs", permission: "lots:read" },
  { route: { name: "devices" }, label: "Devices & health", permission: null },
  { route: { name: "alerts" }, label: "Alerts", permission: "dashboard:read" },
  { route: { name: "audit" }, label: "Audit log", permission: "audit:read" },
];

/** Which page a route belongs to, for highlighting (a LOT's page is under LOTs). */
function section(route: Route): string {
  if (route.name === "lot" || route.name === "unit") return "lots";
  return route.name;
}

/** Polls open alerts into the shared store; mounted once, for users who may read them. */
function AlertsFeed() {
  const fetcher = useCallback((signal: AbortSignal) => endpoints.alerts(false, signal), []);
  const poll = usePolling("alerts:open", fetcher, ALERTS_INTERVAL_MS);
  useEffect(() => {
    useAlerts.setState({ data: poll.data, error: poll.error, retryInMs: poll.retryInMs, updatedAt: poll.updatedAt,
                         refresh: poll.refresh });
  }, [poll.data, poll.error, poll.retryInMs, poll.updatedAt, poll.refresh]);
  return null;
}

function Forbidden() {
  return <Alert severity="info">Your role may not see this page.</Alert>;
}

function Page({ route, allowed }: { route: Route; allowed: (item: NavItem | undefined) => boolean }) {
  const item = NAV.find((n) => n.route.name === section(route));
  if (route.name !== "not_found" && !allowed(item)) return <Forbidden />;
  switch (route.name) {
    case "overview":
      return <OverviewPage />;
    case "lots":
      return <LotsPage />;
    case "lot":
      return <LotDetailPage lotNumber={route.lotNumber} />;
    case "unit":
      return <UnitPage serialNumber={route.serialNumber} />;
    case "devices":
      return <DevicesPage />;
    case "alerts":
      return <AlertsPage />;
    case "audit":
      return <AuditPage />;
    default:
      return <Alert severity="warning">No page at {route.path}. <a href="#/">Go to the overview</a>.</Alert>;
  }
}

function Shell() {
  const route = useRoute();
  const me = useAuth((s) => s.me);
  const logout = useAuth((s) => s.logout);
  const permissions = me?.permissions ?? [];
  const allowed = (item: NavItem | undefined) =>
    !item || item.permission === null || me?.role === "admin" || permissions.includes(item.permission);
  const items = NAV.filter(allowed);
  const canAlerts = useCan("dashboard:read");
  const openAlerts = useAlerts((s) => s.data?.open ?? 0);
  const current = section(route);

  // A first page the user may see: a role without dashboard access lands on the LOTs.
  const landing = route.name === "overview" && !allowed(NAV[0]) && items.length > 0 ? hrefOf(items[0].route) : null;
  useEffect(() => {
    if (landing) window.location.replace(landing);
  }, [landing]);

  return (
    <Box sx={{ minHeight: "100vh", bgcolor: "grey.50" }}>
      {canAlerts && <AlertsFeed />}
      <AppBar position="sticky" elevation={1}>
        <Toolbar variant="dense" sx={{ gap: 2 }}>
          <Typography variant="h6" component="div" sx={{ whiteSpace: "nowrap" }}>NeuroHub MES</Typography>
          <Tabs value={items.some((i) => i.route.name === current) ? current : false} textColor="inherit"
                slotProps={{ indicator: { style: { backgroundColor: "white" } } }}
                sx={{ flexGrow: 1, minHeight: 48 }} aria-label="Pages">
            {items.map((item) => (
              <Tab key={item.route.name} value={item.route.name} href={hrefOf(item.route)} component="a"
                   sx={{ minHeight: 48 }}
                   label={item.route.name === "alerts" && openAlerts > 0
                     ? <Badge color="error" badgeContent={openAlerts} sx={{ pr: 1.5 }}>{item.label}</Badge>
                     : item.label} />
            ))}
          </Tabs>
          <Typography variant="body2" sx={{ whiteSpace: "nowrap" }} data-testid="whoami">
            {me?.name} · {me?.role.replace("_", " ")}
          </Typography>
          <Button color="inherit" onClick={() => void logout()}>Log out</Button>
        </Toolbar>
      </AppBar>
      <Container maxWidth="xl" sx={{ py: 3 }}>
        <ErrorBoundary what="this page" resetKey={window.location.hash}>
          <Page route={route} allowed={allowed} />
        </ErrorBoundary>
      </Container>
    </Box>
  );
}

export function App() {
  const status = useAuth((s) => s.status);
  const restore = useAuth((s) => s.restore);
  const notice = useAuth((s) => s.notice);

  useEffect(() => {
    if (useAuth.getState().status === "loading") void restore();
  }, [restore]);

  if (status === "anonymous") return <LoginPage />;
  if (status === "loading") {
    return (
      <Box sx={{ minHeight: "100vh", display: "grid", placeItems: "center", alignContent: "center", gap: 2 }}>
        <CircularProgress aria-label="Loading" />
        {notice && <Alert severity="warning">{notice}</Alert>}
      </Box>
    );
  }
  return <Shell />;
}
