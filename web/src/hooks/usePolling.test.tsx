// The polling hook in a component: summary every 10 s, backoff with data kept, refresh, unmount.
import { act, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/client";
import { usePolling } from "./usePolling";

function Probe({ fetcher, interval = 10_000 }: { fetcher: () => Promise<string>; interval?: number }) {
  const poll = usePolling("probe", fetcher, interval);
  return (
    <div>
      <span data-testid="data">{poll.data ?? "none"}</span>
      <span data-testid="error">{poll.error?.code ?? "none"}</span>
      <span data-testid="failures">{poll.failures}</span>
      <span data-testid="retry">{poll.retryInMs ?? "none"}</span>
      <button onClick={poll.refresh}>refresh</button>
    </div>
  );
}

const text = (id: string) => screen.getByTestId(id).textContent;
const tick = (ms: number) => act(() => vi.advanceTimersByTimeAsync(ms));

describe("usePolling", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows the first answer and refreshes it every interval", async () => {
    let n = 0;
    const fetcher = vi.fn(async () => `answer ${++n}`);
    render(<Probe fetcher={fetcher} />);
    await tick(0);
    expect(text("data")).toBe("answer 1");
    await tick(10_000);
    expect(text("data")).toBe("answer 2");
    expect(fetcher).toHaveBeenCalledTimes(2);
  });

  it("keeps the last data on screen while failures back off 2, 4, 8 s, then recovers", async () => {
    const outcomes: (string | Error)[] = ["first", new Error("boom"), new Error("boom"), new Error("boom"), "back"];
    const fetcher = vi.fn(async () => {
      const next = outcomes.shift() ?? "later";
      if (next instanceof Error) throw new ApiError("server down", 503, "SERVICE_UNAVAILABLE");
      return next;
    });
    render(<Probe fetcher={fetcher} />);
    await tick(0);
    await tick(10_000);
    expect(text("data")).toBe("first");
    expect(text("error")).toBe("SERVICE_UNAVAILABLE");
    expect([text("failures"), text("retry")]).toEqual(["1", "2000"]);
    await tick(2_000);
    expect([text("failures"), text("retry")]).toEqual(["2", "4000"]);
    await tick(4_000);
    expect([text("failures"), text("retry")]).toEqual(["3", "8000"]);
    await tick(7_999);
    expect(fetcher).toHaveBeenCalledTimes(4);
    await tick(1);
    expect(text("data")).toBe("back");
    expect(text("error")).toBe("none");
    expect(text("failures")).toBe("0");
  });

  it("refresh fetches at once", async () => {
    const fetcher = vi.fn(async () => "x");
    render(<Probe fetcher={fetcher} />);
    await tick(0);
    await act(async () => screen.getByRole("button", { name: "refresh" }).click());
    await tick(0);
    expect(fetcher).toHaveBeenCalledTimes(2);
  });

  it("stops polling when the component goes away", async () => {
    const fetcher = vi.fn(async () => "x");
    const view = render(<Probe fetcher={fetcher} />);
    await tick(0);
    view.unmount();
    await tick(60_000);
    expect(fetcher).toHaveBeenCalledTimes(1);
  });
});

describe("usePolling in a hidden tab", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    Object.defineProperty(document, "hidden", { configurable: true, value: false });
  });

  it("stops while the tab is hidden and fetches again when it is shown", async () => {
    const fetcher = vi.fn(async () => "x");
    render(<Probe fetcher={fetcher} />);
    await tick(0);
    Object.defineProperty(document, "hidden", { configurable: true, value: true });
    act(() => {
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await tick(60_000);
    expect(fetcher).toHaveBeenCalledTimes(1);
    Object.defineProperty(document, "hidden", { configurable: true, value: false });
    act(() => {
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await tick(0);
    expect(fetcher).toHaveBeenCalledTimes(2);
  });
});
