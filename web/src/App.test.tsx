// The shell against a fake kernel over HTTP: login form, role-aware navigation, alerts badge.
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "./App";
import { startFakeKernel, type FakeKernel } from "./test/fakeKernel";
import { logoutLocally, me, useKernel } from "./test/session";
import { useAuth } from "./store/auth";

let kernel: FakeKernel;

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
  logoutLocally();
  kernel.route("POST", "/api/v1/auth/login", (req) => {
    const { username, password } = req.body as { username: string; password: string };
    if (password !== "right-password") {
      return { status: 401, body: { detail: { code: "INVALID_CREDENTIALS", message: "wrong username or password" } } };
    }
    const role = username === "boss" ? "admin" : username;
    return { body: { access_token: `access-${role}`, refresh_token: `refresh-${role}-0000`, token_type: "bearer",
                     expires_in: 900, role } };
  });
  kernel.route("GET", "/api/v1/auth/me", (req) => {
    const role = (req.authorization ?? "").replace("Bearer access-", "");
    return { body: me(role, role === "admin" ? "boss" : role) };
  });
  kernel.route("GET", "/api/v1/alerts", () => ({
    body: { items: [{ id: 1, key: "breaker:label_printer", severity: "critical", source: "label_printer",
                      message: "breaker open", detail: null, raised_at: "2026-11-26T05:00:00Z",
                      resolved_at: null, open: true }], open: 1, open_by_severity: { critical: 1 } },
  }));
  kernel.route("GET", "/api/v1/dashboard/panels", () => ({ body: [] }));
  kernel.route("GET", "/api/v1/lots", () => ({ body: { items: [], total: 0, limit: 25, offset: 0 } }));
});

afterEach(async () => {
  logoutLocally();
  await kernel.close();
});

async function logIn(username: string, password = "right-password") {
  const user = userEvent.setup();
  await user.type(screen.getByLabelText(/Username/), username);
  await user.type(screen.getByLabelText(/Password/), password);
  await user.click(screen.getByRole("button", { name: "Log in" }));
}

describe("App", () => {
  it("says so when the password is wrong, and stays on the form", async () => {
    render(<App />);
    await logIn("viewer", "nope");
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong username or password.");
    expect(useAuth.getState().status).toBe("anonymous");
  });

  it("logs an admin in through the form and shows every page, with the open-alert count", async () => {
    render(<App />);
    await logIn("boss");
    const nav = await screen.findByRole("tablist", { name: "Pages" });
    expect(within(nav).getAllByRole("tab").map((t) => t.textContent?.replace(/\d+$/, ""))).toEqual([
      "Overview", "Production", "Quality", "Executive", "LOTs", "Labels", "Devices & health", "Alerts", "Audit log",
    ]);
    expect(screen.getByTestId("whoami")).toHaveTextContent("boss · admin");
    await waitFor(() => expect(within(nav).getByRole("tab", { name: /Alerts/ })).toHaveTextContent("Alerts1"));
    expect(localStorage.getItem("mes.tokens")).toContain("access-admin");
    const login = kernel.seen.find((s) => s.path === "/api/v1/auth/login");
    expect(login?.body).toEqual({ username: "boss", password: "right-password" });
    expect(kernel.seen.find((s) => s.path === "/api/v1/auth/me")?.authorization).toBe("Bearer access-admin");
  });

  it("hides the audit log from a production manager", async () => {
    render(<App />);
    await logIn("production_manager");
    const nav = await screen.findByRole("tablist", { name: "Pages" });
    expect(within(nav).queryByRole("tab", { name: "Audit log" })).toBeNull();
    window.location.hash = "#/audit";
    expect(await screen.findByText("Your role may not see this page.")).toBeInTheDocument();
  });

  it("sends a worker without dashboard access to the page it may see", async () => {
    kernel.route("GET", "/api/v1/auth/me", () => ({
      body: { ...me("worker"), permissions: ["lots:read", "health:details"] },
    }));
    render(<App />);
    await logIn("worker");
    await waitFor(() => expect(window.location.hash).toBe("#/lots"));
    expect(kernel.seen.some((s) => s.path === "/api/v1/alerts")).toBe(false);
  });

  it("shows a worker the overview but none of the views that read KPIs (they need kpi:read)", async () => {
    kernel.route("GET", "/api/v1/auth/me", () => ({
      body: { ...me("worker"), permissions: ["dashboard:read", "lots:read", "records:write"] },
    }));
    kernel.route("GET", "/api/v1/dashboard/summary", () => ({ status: 503, body: { detail: { code: "X", message: "x" } } }));
    render(<App />);
    await logIn("worker");
    const nav = await screen.findByRole("tablist", { name: "Pages" });
    const tabs = within(nav).getAllByRole("tab").map((t) => t.textContent?.replace(/\d+$/, ""));
    expect(tabs).toContain("Overview");
    for (const view of ["Production", "Quality", "Executive"]) expect(tabs).not.toContain(view);
    window.location.hash = "#/production";
    expect(await screen.findByText("Your role may not see this page.")).toBeInTheDocument();
    expect(kernel.seen.some((s) => s.path.startsWith("/api/v1/kpi/"))).toBe(false);
  });

  it("keeps a stored login while the server is unreachable, and gets in when it answers", async () => {
    localStorage.setItem("mes.tokens", JSON.stringify({ access_token: "access-viewer", refresh_token: "refresh-v-0000",
                                                        token_type: "bearer", expires_in: 900, role: "viewer",
                                                        obtained_at: Date.now() }));
    useAuth.setState({ tokens: JSON.parse(localStorage.getItem("mes.tokens") as string), status: "loading" });
    kernel.route("GET", "/api/v1/auth/me", () => ({
      status: 502, body: { detail: { code: "BAD_GATEWAY", message: "the kernel is restarting" } },
    }));
    render(<App />);
    expect(await screen.findByText(/the kernel is restarting — retrying in 2 s/)).toBeInTheDocument();
    expect(localStorage.getItem("mes.tokens")).not.toBeNull();
    kernel.route("GET", "/api/v1/auth/me", () => ({ body: me("viewer") }));
    expect(await screen.findByRole("tablist", { name: "Pages" }, { timeout: 4000 })).toBeInTheDocument();
  });

  it("returns to the login form with a notice when the session is revoked", async () => {
    render(<App />);
    await logIn("boss");
    await screen.findByRole("tablist", { name: "Pages" });
    kernel.route("GET", "/api/v1/lots", () => ({
      status: 401, body: { detail: { code: "INVALID_TOKEN", message: "invalid access token" } },
    }));
    window.location.hash = "#/lots";
    expect(await screen.findByText("Your session was ended. Please log in again.")).toBeInTheDocument();
    expect(localStorage.getItem("mes.tokens")).toBeNull();
  });
});
