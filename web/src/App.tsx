// The shell: login gate, top bar (a menu drawer on phones) with the views this user may use, the page.
import { lazy, Suspense, useCallback, useEffect, useState } from "react";
import AppBar from "@mui/material/AppBar";
import Badge from "@mui/material/Badge";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import CircularProgress from "@mui/material/CircularProgress";
import Container from "@mui/material/Container";
import Divider from "@mui/material/Divider";
import Drawer from "@mui/material/Drawer";
import IconButton from "@mui/material/IconButton";
import List from "@mui/material/List";
import ListItemButton from "@mui/material/ListItemButton";
import ListItemText from "@mui/material/ListItemText";
import MenuItem from "@mui/material/MenuItem";
import SvgIcon from "@mui/material/SvgIcon";
import Tab from "@mui/material/Tab";
import Tabs from "@mui/material/Tabs";
import TextField from "@mui/material/TextField";
import Toolbar from "@mui/material/Toolbar";
import Typography from "@mui/material/Typography";
import Alert from "@mui/material/Alert";
import { useTranslation } from "react-i18next";
import { endpoints } from "./api/endpoints";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { usePolling } from "./hooks/usePolling";
import { applyUserLanguage, chooseLanguage, LANGUAGES, type Language } from "./i18n";
import { setPlantTimeZone } from "./i18n/format";
import { AlertsPage, ALERTS_INTERVAL_MS } from "./pages/AlertsPage";
import { AuditPage } from "./pages/AuditPage";
import { DevicesPage } from "./pages/DevicesPage";
import { ExecutivePage } from "./pages/ExecutivePage";
import { LoginPage } from "./pages/LoginPage";
import { LotDetailPage } from "./pages/LotDetailPage";
import { LotsPage } from "./pages/LotsPage";
import { OverviewPage } from "./pages/OverviewPage";
import { ProductionPage } from "./pages/ProductionPage";
import { QualityPage } from "./pages/QualityPage";
import { ShiftCalendarPage } from "./pages/ShiftCalendarPage";
import { UnitPage } from "./pages/UnitPage";
import { hrefOf, useRoute, type Route } from "./router";
import { DrillDownPage } from "./pages/DrillDownPage";
import { useAlerts } from "./store/alerts";
import { useAuth, useCan } from "./store/auth";
import type { Me } from "./api/types";

interface NavItem {
  route: Route;
  /** Catalog key of the label. */
  label: string;
  /** The permission that shows the page; null for every logged-in user. */
  permission: string | null;
  /** The roles whose view this is (admins see every view); absent: every role with the permission. */
  audience?: string[];
}

/** The label page is loaded when first opened: few users need it, and it brings a renderer worker. */
const LabelTemplatesPage = lazy(() => import("./pages/LabelTemplatesPage")
  .then((m) => ({ default: m.LabelTemplatesPage })));

export const NAV: NavItem[] = [
  { route: { name: "overview" }, label: "nav.overview", permission: "dashboard:read" },
  // The three audience views read `GET /kpi/*`, so they need `kpi:read` (a worker has the overview only).
  { route: { name: "production" }, label: "nav.production", permission: "kpi:read",
    audience: ["production_manager", "viewer"] },
  { route: { name: "quality" }, label: "nav.quality", permission: "kpi:read",
    audience: ["production_manager", "quality_manager"] },
  { route: { name: "executive" }, label: "nav.executive", permission: "kpi:read",
    audience: ["production_manager", "executive"] },
  { route: { name: "lots" }, label: "nav.lots", permission: "lots:read" },
  { route: { name: "labels" }, label: "nav.labels", permission: "labels:view" },
  { route: { name: "devices" }, label: "nav.devices", permission: null },
  { route: { name: "alerts" }, label: "nav.alerts", permission: "dashboard:read" },
  { route: { name: "audit" }, label: "nav.audit", permission: "audit:read" },
];

/** The view a role lands on: its audience's own view first. */
const LANDING: Record<string, Route["name"]> = { quality_manager: "quality", executive: "executive" };

/** Which page a route belongs to, for highlighting (a LOT's page is under LOTs). */
function section(route: Route): string {
  if (route.name === "lot" || route.name === "unit") return "lots";
  if (route.name === "drill") return "quality";
  if (route.name === "calendar") return "production";
  return route.name;
}

export function mayUse(me: Me | null, item: NavItem | undefined): boolean {
  if (!item) return true;
  if (me?.role === "admin") return true;
  if (item.permission !== null && !(me?.permissions ?? []).includes(item.permission)) return false;
  return !item.audience || (!!me && item.audience.includes(me.role));
}

/** Polls open alerts into the shared store; mounted once, for users who may read them. */
function AlertsFeed() {
  const fetcher = useCallback((signal: AbortSignal) => endpoints.alerts(false, signal), []);
  const poll = usePolling("GET /alerts", fetcher, ALERTS_INTERVAL_MS);
  useEffect(() => {
    useAlerts.setState({ data: poll.data, error: poll.error, retryInMs: poll.retryInMs, updatedAt: poll.updatedAt,
                         refresh: poll.refresh });
  }, [poll.data, poll.error, poll.retryInMs, poll.updatedAt, poll.refresh]);
  return null;
}

function Forbidden() {
  const { t } = useTranslation();
  return <Alert severity="info">{t("shell.forbidden")}</Alert>;
}

function Page({ route, allowed }: { route: Route; allowed: (item: NavItem | undefined) => boolean }) {
  const { t } = useTranslation();
  const item = NAV.find((n) => n.route.name === section(route));
  if (route.name !== "not_found" && !allowed(item)) return <Forbidden />;
  switch (route.name) {
    case "overview":
      return <OverviewPage />;
    case "production":
      return <ProductionPage />;
    case "calendar":
      return <ShiftCalendarPage />;
    case "quality":
      return <QualityPage />;
    case "drill":
      return <DrillDownPage />;
    case "executive":
      return <ExecutivePage />;
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
    case "labels":
      return (
        <Suspense fallback={<CircularProgress aria-label={t("common.loading")} />}>
          <LabelTemplatesPage />
        </Suspense>
      );
    default:
      return (
        <Alert severity="warning">
          {t("shell.noPage", { path: route.path })} <a href="#/">{t("shell.toOverview")}</a>
        </Alert>
      );
  }
}

const LANGUAGE_NAMES: Record<Language, string> = { en: "English", ko: "한국어" };

/** Switch the language now, and store the choice with the user on the server so it follows them to any
 *  browser (a station's login, or a kernel without `PATCH /auth/me`, keeps it in this browser only). */
export function pickLanguage(language: Language, me: Me | null): void {
  chooseLanguage(language, me?.name);
  if (me?.kind !== "user") return;
  endpoints.saveLanguage(language).then((saved) => {
    const now = useAuth.getState().me;
    if (now && now.name === saved.name) useAuth.setState({ me: { ...now, language: saved.language } });
  }, () => undefined); // not stored on the server: this browser still keeps the choice
}

export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  const me = useAuth((s) => s.me);
  return (
    <TextField select size="small" label={t("shell.language")} value={i18n.language}
               sx={{ minWidth: 120, "& .MuiInputBase-root": { bgcolor: "background.paper" } }}
               onChange={(e) => pickLanguage(e.target.value as Language, me)}
               slotProps={{ htmlInput: { "data-testid": "language" } }}>
      {LANGUAGES.map((l) => <MenuItem key={l} value={l} lang={l}>{LANGUAGE_NAMES[l]}</MenuItem>)}
    </TextField>
  );
}

const MenuIcon = () => (
  <SvgIcon><path d="M3 18h18v-2H3v2zm0-5h18v-2H3v2zm0-7v2h18V6H3z" /></SvgIcon>
);

function Shell() {
  const { t } = useTranslation();
  const route = useRoute();
  const me = useAuth((s) => s.me);
  const logout = useAuth((s) => s.logout);
  const [menuOpen, setMenuOpen] = useState(false);
  const allowed = (item: NavItem | undefined) => mayUse(me, item);
  const items = NAV.filter(allowed);
  const canAlerts = useCan("dashboard:read");
  const openAlerts = useAlerts((s) => s.data?.open ?? 0);
  const current = section(route);

  useEffect(() => applyUserLanguage({ name: me?.name, language: me?.language }), [me?.name, me?.language]);
  // Dates show in the plant's zone, which the KPI summary names.
  useEffect(() => {
    if (!canAlerts) return;
    const controller = new AbortController();
    endpoints.summary(controller.signal).then((s) => setPlantTimeZone(s.timezone), () => undefined);
    return () => controller.abort();
  }, [canAlerts]);

  // A first page the user may see: a role's own view, or the LOTs for a role without dashboard access.
  const preferred = me ? NAV.find((n) => n.route.name === LANDING[me.role]) : undefined;
  const landingItem = preferred && allowed(preferred) ? preferred
    : !allowed(NAV[0]) && items.length > 0 ? items[0] : undefined;
  const landing = route.name === "overview" && landingItem && window.location.hash.replace(/^#\/?/, "") === ""
    ? hrefOf(landingItem.route) : null;
  useEffect(() => {
    if (landing) window.location.replace(landing);
  }, [landing]);

  const label = (item: NavItem) => item.route.name === "alerts" && openAlerts > 0
    ? <Badge color="error" badgeContent={openAlerts} sx={{ pr: 1.5 }}>{t(item.label)}</Badge>
    : t(item.label);
  const whoami = me ? `${me.name} · ${t(`role.${me.role}`, { defaultValue: me.role })}` : "";

  return (
    <Box sx={{ minHeight: "100vh", bgcolor: "grey.50" }}>
      {canAlerts && <AlertsFeed />}
      <AppBar position="sticky" elevation={1} component="header">
        <Toolbar variant="dense" sx={{ gap: 2, minWidth: 0 }}>
          <IconButton color="inherit" edge="start" aria-label={t("shell.menu")} sx={{ display: { md: "none" } }}
                      onClick={() => setMenuOpen(true)} data-testid="menu-button">
            <MenuIcon />
          </IconButton>
          <Typography variant="h6" component="div" sx={{ whiteSpace: "nowrap", flexGrow: { xs: 1, md: 0 } }}>
            {t("app.name")}
          </Typography>
          <Box component="nav" aria-label={t("shell.navigation")} sx={{ flexGrow: 1, minWidth: 0, display: { xs: "none", md: "block" } }}>
            <Tabs value={items.some((i) => i.route.name === current) ? current : false} textColor="inherit"
                  variant="scrollable" scrollButtons="auto" aria-label={t("shell.pages")}
                  slotProps={{ indicator: { style: { backgroundColor: "white" } } }} sx={{ minHeight: 48 }}>
              {items.map((item) => (
                <Tab key={item.route.name} value={item.route.name} href={hrefOf(item.route)} component="a"
                     sx={{ minHeight: 48, opacity: 1 }} label={label(item)} />
              ))}
            </Tabs>
          </Box>
          <Box sx={{ display: { xs: "none", md: "flex" }, gap: 2, alignItems: "center" }}>
            <Typography variant="body2" sx={{ whiteSpace: "nowrap" }} data-testid="whoami">{whoami}</Typography>
            <LanguageSwitch />
            <Button color="inherit" onClick={() => void logout()}>{t("shell.logout")}</Button>
          </Box>
        </Toolbar>
      </AppBar>
      <Drawer open={menuOpen} onClose={() => setMenuOpen(false)} slotProps={{ paper: { sx: { width: 280 } } }}>
        <Box component="nav" aria-label={t("shell.navigation")} data-testid="menu">
          <Typography variant="body2" sx={{ p: 2 }} data-testid="whoami-menu">{whoami}</Typography>
          <Divider />
          <List>
            {items.map((item) => (
              <ListItemButton key={item.route.name} component="a" href={hrefOf(item.route)}
                              selected={item.route.name === current} onClick={() => setMenuOpen(false)}>
                <ListItemText primary={label(item)} />
              </ListItemButton>
            ))}
          </List>
          <Divider />
          <Box sx={{ p: 2, display: "flex", flexDirection: "column", gap: 2 }}>
            <LanguageSwitch />
            <Button variant="outlined" onClick={() => void logout()}>{t("shell.logout")}</Button>
          </Box>
        </Box>
      </Drawer>
      <Container maxWidth="xl" sx={{ py: 3, px: { xs: 1.5, sm: 3 } }} component="main">
        <ErrorBoundary what={t("shell.thisPage")} resetKey={window.location.hash}>
          <Page route={route} allowed={allowed} />
        </ErrorBoundary>
      </Container>
    </Box>
  );
}

export function App() {
  const { t } = useTranslation();
  const status = useAuth((s) => s.status);
  const restore = useAuth((s) => s.restore);
  const notice = useAuth((s) => s.notice);

  useEffect(() => {
    if (useAuth.getState().status === "loading") void restore();
  }, [restore]);

  if (status === "anonymous") return <LoginPage />;
  if (status === "loading") {
    return (
      <Box component="main" sx={{ minHeight: "100vh", display: "grid", placeItems: "center", alignContent: "center", gap: 2 }}>
        <CircularProgress aria-label={t("common.loading")} />
        {notice && <Alert severity="warning">{t(notice.key, notice.params ?? {})}</Alert>}
      </Box>
    );
  }
  return <Shell />;
}
