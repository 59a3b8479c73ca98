// Who is logged in: tokens (one login per browser), `/auth/me`, and the one API client that uses them.
import { create } from "zustand";
import { createApiClient, toApiError } from "../api/client";
import { backoffDelay } from "../hooks/poller";
import type { Me, TokenPair } from "../api/types";

const STORAGE_KEY = "mes.tokens";
/** Refresh this long before the access token runs out, so polling never meets an expired token. */
const REFRESH_MARGIN_SECONDS = 60;

interface StoredTokens extends TokenPair {
  obtained_at: number;
}

export interface Notice {
  key: string;
  params?: Record<string, string>;
}

export type AuthStatus = "anonymous" | "loading" | "authenticated";

interface AuthState {
  tokens: StoredTokens | null;
  me: Me | null;
  status: AuthStatus;
  /** Why the user is looking at the login form again (session expired, revoked …): a catalog key and its values. */
  notice: Notice | null;
  login(username: string, password: string): Promise<void>;
  logout(): Promise<void>;
  restore(): Promise<void>;
  can(permission: string): boolean;
}

// One login per browser, shared by its tabs through local storage. The tabs share one refresh
// token, which is single-use (the kernel revokes the whole login when one is used twice), so a
// refresh runs under a cross-tab lock and first looks whether another tab already did it.
function readStored(): StoredTokens | null {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as StoredTokens) : null;
  } catch {
    return null;
  }
}

function writeStored(tokens: StoredTokens | null): void {
  try {
    if (tokens) window.localStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
    else window.localStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage disabled (private mode): the login lasts as long as the page
  }
}

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let restoreFailures = 0;

/** Milliseconds until the access token should be swapped: a minute before it expires, never in under 1 s. */
export function refreshDelayMs(tokens: Pick<StoredTokens, "obtained_at" | "expires_in">, now: number): number {
  const dueAt = tokens.obtained_at + Math.max(tokens.expires_in - REFRESH_MARGIN_SECONDS, 10) * 1000;
  return Math.max(dueAt - now, 1000);
}

function scheduleRefresh(tokens: StoredTokens | null): void {
  clearTimeout(refreshTimer);
  if (!tokens) return;
  refreshTimer = setTimeout(() => {
    api.refresh().catch(() => {
      // a network blip: the 401 path refreshes on the next request instead
    });
  }, refreshDelayMs(tokens, Date.now()));
}

const NOTICES: Record<string, string> = {
  expired: "auth.expired",
  revoked: "auth.revoked",
};

export const useAuth = create<AuthState>()((set, get) => ({
  tokens: readStored(),
  me: null,
  status: readStored() ? "loading" : "anonymous",
  notice: null,

  async login(username, password) {
    const res = await api.http.post<TokenPair>("/auth/login", { username, password });
    saveTokens(res.data);
    set({ notice: null, status: "loading" });
    await get().restore();
  },

  async logout() {
    const tokens = get().tokens;
    if (tokens) {
      await api.http.post("/auth/logout", { refresh_token: tokens.refresh_token }).catch(() => undefined);
    }
    endSession(null);
  },

  async restore() {
    if (!get().tokens) {
      set({ status: "anonymous", me: null });
      return;
    }
    try {
      const res = await api.http.get<Me>("/auth/me");
      restoreFailures = 0;
      scheduleRefresh(get().tokens);
      set({ me: res.data, status: "authenticated", notice: null });
    } catch (error) {
      const apiError = toApiError(error);
      if (apiError.status === 401 || apiError.status === 403) {
        if (get().tokens) endSession("revoked");
        return;
      }
      // The server is down or restarting: keep the login and try again (2, 4, 8 s …).
      restoreFailures += 1;
      const delay = backoffDelay(restoreFailures, apiError);
      set({ notice: { key: "auth.retrying", params: { message: apiError.message, seconds: String(Math.round(delay / 1000)) } } });
      setTimeout(() => void get().restore(), delay);
    }
  },

  can(permission) {
    const me = get().me;
    return !!me && (me.role === "admin" || me.permissions.includes(permission));
  },
}));

function saveTokens(pair: TokenPair): void {
  const tokens: StoredTokens = { ...pair, obtained_at: Date.now() };
  writeStored(tokens);
  scheduleRefresh(tokens);
  useAuth.setState({ tokens });
}

function endSession(reason: string | null): void {
  writeStored(null);
  scheduleRefresh(null);
  useAuth.setState({ tokens: null, me: null, status: "anonymous", notice: reason ? { key: NOTICES[reason] ?? reason } : null });
}

/** Adopt tokens another tab wrote (after its refresh); forget the login when another tab logged out. */
function adoptStored(): StoredTokens | null {
  const stored = readStored();
  const current = useAuth.getState().tokens;
  if (stored && stored.refresh_token !== current?.refresh_token) {
    scheduleRefresh(stored);
    useAuth.setState({ tokens: stored });
  }
  return stored;
}

if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key !== STORAGE_KEY) return;
    const wasAnonymous = useAuth.getState().status === "anonymous";
    const stored = adoptStored();
    if (stored === null && useAuth.getState().tokens) endSession(null);
    else if (stored !== null && wasAnonymous) {
      // Logged in in another tab: this one follows.
      useAuth.setState({ status: "loading", notice: null });
      void useAuth.getState().restore();
    }
  });
}

function exclusive<T>(work: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  return locks ? (locks.request("mes-token-refresh", work) as Promise<T>) : work();
}

export const api = createApiClient({
  tokens: () => useAuth.getState().tokens,
  save: saveTokens,
  end: endSession,
  latest: adoptStored,
  exclusive,
});

/** Hook form of `can`: re-renders when the user's permissions change. */
export function useCan(permission: string): boolean {
  return useAuth((s) => !!s.me && (s.me.role === "admin" || s.me.permissions.includes(permission)));
}
