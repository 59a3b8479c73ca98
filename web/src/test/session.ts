// Point the app's API client at a fake kernel and log a role in, for component tests.
import { useAuth } from "../store/auth";
import { api } from "../store/auth";
import type { Me } from "../api/types";
import type { FakeKernel } from "./fakeKernel";

export const PERMISSIONS: Record<string, string[]> = {
  production_manager: ["dashboard:read", "health:details", "kpi:read", "labels:templates", "labels:view", "lines:read",
                       "lots:read", "lots:write", "plugins:read", "processes:write", "records:write", "shifts:write",
                       "stations:read"],
  viewer: ["dashboard:read", "health:details", "kpi:read", "labels:view", "lines:read", "lots:read", "plugins:read",
           "stations:read"],
  worker: ["dashboard:read", "health:details", "labels:view", "lines:read", "lots:read", "records:write"],
  admin: ["audit:read", "dashboard:read", "kpi:read", "lots:read", "lots:write", "plugins:read", "stations:read"],
};

export function useKernel(kernel: FakeKernel): void {
  api.http.defaults.baseURL = `${kernel.url}/api/v1`;
  // Node's HTTP client: jsdom's XHR would apply browser CORS rules to the test server.
  api.http.defaults.adapter = "http";
}

export function me(role: string, name = `test-${role}`): Me {
  return { kind: "user", name, role, station: null, permissions: PERMISSIONS[role] };
}

export function loginAs(role: string): void {
  useAuth.setState({
    tokens: { access_token: `access-${role}`, refresh_token: `refresh-${role}`, token_type: "bearer",
              expires_in: 900, role, obtained_at: Date.now() },
    me: me(role),
    status: "authenticated",
    notice: null,
  });
}

export function logoutLocally(): void {
  useAuth.setState({ tokens: null, me: null, status: "anonymous", notice: null });
}
