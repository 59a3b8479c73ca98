// The HTTP client: bearer tokens, one shared refresh when the access token expires, errors as ApiError.
import axios, { AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import type { TokenPair } from "./types";

export const API_BASE = "/api/v1";

/** An API failure with the kernel's stable error code (`{"detail": {"code", "message"}}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: Record<string, unknown>;
  /** Seconds the server asked us to wait (503 from an open breaker, 429 from the rate limit). */
  readonly retryAfter: number | null;

  constructor(message: string, status: number, code: string, detail: Record<string, unknown> = {},
              retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function retryAfterOf(error: AxiosError, detail: Record<string, unknown>): number | null {
  const fromBody = Number(detail.retry_after);
  if (Number.isFinite(fromBody) && fromBody > 0) return fromBody;
  const header = Number(error.response?.headers?.["retry-after"]);
  return Number.isFinite(header) && header > 0 ? header : null;
}

/** Turn whatever axios threw into an ApiError carrying the kernel's code and message. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (axios.isAxiosError(error)) {
    const status = error.response?.status ?? 0;
    const body = error.response?.data as { detail?: unknown } | undefined;
    const raw = body?.detail;
    if (raw && typeof raw === "object" && !Array.isArray(raw)) {
      const detail = raw as Record<string, unknown>;
      const code = typeof detail.code === "string" ? detail.code : `HTTP_${status}`;
      const message = typeof detail.message === "string" ? detail.message : error.message;
      return new ApiError(message, status, code, detail, retryAfterOf(error, detail));
    }
    if (typeof raw === "string") return new ApiError(raw, status, `HTTP_${status}`);
    if (status === 0) return new ApiError("the server cannot be reached", 0, "NETWORK_ERROR");
    return new ApiError(error.message, status, `HTTP_${status}`, {}, retryAfterOf(error, {}));
  }
  return new ApiError(error instanceof Error ? error.message : String(error), 0, "CLIENT_ERROR");
}

/** Where the client keeps and hands back the tokens; `end` is called when the login is over. */
export interface TokenSession {
  tokens(): TokenPair | null;
  save(tokens: TokenPair): void;
  end(reason: string): void;
  /** The tokens as other browser tabs may have left them (they share one login). */
  latest?(): TokenPair | null;
  /** Run a refresh alone across tabs: a refresh token is single-use, and reuse revokes the login. */
  exclusive?<T>(work: () => Promise<T>): Promise<T>;
}

export interface ApiClient {
  http: AxiosInstance;
  /** Swap the refresh token for a new pair; concurrent callers share one request (rotation is single-use). */
  refresh(): Promise<TokenPair>;
}

type RetriableConfig = InternalAxiosRequestConfig & { _retried?: boolean };

export function createApiClient(session: TokenSession, baseURL: string = API_BASE): ApiClient {
  const http = axios.create({ baseURL, timeout: 15_000, headers: { Accept: "application/json" } });
  const bare = axios.create({ baseURL, timeout: 15_000 });
  let inFlight: Promise<TokenPair> | null = null;

  function refresh(): Promise<TokenPair> {
    if (inFlight) return inFlight;
    const before = session.tokens();
    if (!before) return Promise.reject(new ApiError("not logged in", 401, "NOT_AUTHENTICATED"));
    const work = async (): Promise<TokenPair> => {
      const latest = session.latest?.() ?? session.tokens();
      if (!latest) throw new ApiError("logged out", 401, "NOT_AUTHENTICATED");
      if (latest.refresh_token !== before.refresh_token) return latest; // another tab rotated it already
      // Without the interceptors (a 401 here must not trigger another refresh), on the same server.
      const res = await bare.post<TokenPair>("/auth/refresh", { refresh_token: latest.refresh_token },
                                             { baseURL: http.defaults.baseURL, adapter: http.defaults.adapter });
      session.save(res.data);
      return res.data;
    };
    inFlight = (session.exclusive ? session.exclusive(work) : work())
      .catch((error: unknown) => {
        const apiError = toApiError(error);
        // A network failure leaves the login alive: the next attempt may succeed.
        if (apiError.status === 401) session.end(apiError.code === "TOKEN_EXPIRED" ? "expired" : "revoked");
        throw apiError;
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  }

  http.interceptors.request.use((config) => {
    const tokens = session.tokens();
    if (tokens && !config.headers.has("Authorization")) {
      config.headers.set("Authorization", `Bearer ${tokens.access_token}`);
    }
    return config;
  });

  http.interceptors.response.use(undefined, async (error: unknown) => {
    const apiError = toApiError(error);
    const config = axios.isAxiosError(error) ? (error.config as RetriableConfig | undefined) : undefined;
    if (apiError.status === 401 && config && session.tokens()) {
      if (apiError.code === "TOKEN_EXPIRED" && !config._retried) {
        config._retried = true;
        // Requests sent just before another one refreshed only need the new token, not a new pair.
        const current = session.tokens();
        const sentWith = String(config.headers.get("Authorization") ?? "");
        const fresh = current && sentWith !== `Bearer ${current.access_token}` ? current : await refresh();
        config.headers.set("Authorization", `Bearer ${fresh.access_token}`);
        return http.request(config);
      }
      session.end(apiError.code === "TOKEN_EXPIRED" ? "expired" : "revoked");
    }
    throw apiError;
  });

  return { http, refresh };
}

/**
 * A panel's data endpoint as a path under the API base. Panels declare `/api/v1/...` or a path
 * relative to it; anything pointing at another origin is refused so a plugin cannot send the
 * manager's token elsewhere.
 */
export function panelPath(endpoint: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(endpoint) || endpoint.startsWith("//")) {
    throw new ApiError(`panel endpoint ${endpoint} is not on this server`, 0, "BAD_PANEL_ENDPOINT");
  }
  let path = endpoint.startsWith(API_BASE + "/") ? endpoint.slice(API_BASE.length) : endpoint;
  if (!path.startsWith("/")) path = "/" + path;
  return path;
}
