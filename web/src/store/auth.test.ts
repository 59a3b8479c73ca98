// The login store: when the access token is refreshed, and what the role may do.
import { afterEach, describe, expect, it } from "vitest";
import { refreshDelayMs, useAuth } from "./auth";
import { loginAs, logoutLocally } from "../test/session";

describe("refreshDelayMs", () => {
  it("refreshes a 15-minute token a minute before it expires", () => {
    expect(refreshDelayMs({ obtained_at: 0, expires_in: 900 }, 0)).toBe(840_000);
    expect(refreshDelayMs({ obtained_at: 0, expires_in: 900 }, 800_000)).toBe(40_000);
  });

  it("never schedules in the past or in a tight loop", () => {
    expect(refreshDelayMs({ obtained_at: 0, expires_in: 900 }, 10_000_000)).toBe(1000);
    expect(refreshDelayMs({ obtained_at: 0, expires_in: 30 }, 0)).toBe(10_000);
  });
});

describe("can", () => {
  afterEach(logoutLocally);

  it("follows /auth/me permissions, and admin may do everything", () => {
    loginAs("viewer");
    expect(useAuth.getState().can("lots:read")).toBe(true);
    expect(useAuth.getState().can("lots:write")).toBe(false);
    loginAs("admin");
    expect(useAuth.getState().can("users:manage")).toBe(true);
    logoutLocally();
    expect(useAuth.getState().can("lots:read")).toBe(false);
  });
});

describe("tabs of one browser", () => {
  afterEach(logoutLocally);

  it("follows a logout in another tab", () => {
    loginAs("viewer");
    localStorage.removeItem("mes.tokens");
    window.dispatchEvent(new StorageEvent("storage", { key: "mes.tokens", newValue: null }));
    expect(useAuth.getState().status).toBe("anonymous");
    expect(useAuth.getState().tokens).toBeNull();
  });

  it("adopts the pair another tab stored after its refresh", () => {
    loginAs("viewer");
    const fresh = { access_token: "access-new", refresh_token: "refresh-new-0000", token_type: "bearer",
                    expires_in: 900, role: "viewer", obtained_at: Date.now() };
    localStorage.setItem("mes.tokens", JSON.stringify(fresh));
    window.dispatchEvent(new StorageEvent("storage", { key: "mes.tokens" }));
    expect(useAuth.getState().tokens?.access_token).toBe("access-new");
    expect(useAuth.getState().status).toBe("authenticated");
  });
});
