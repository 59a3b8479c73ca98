// One request per URL per interval, however many components show it.
import { act, render } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { polledKeys } from "./pollStore";
import { usePolling } from "./usePolling";

function Panel({ fetcher, interval, id }: { fetcher: () => Promise<string>; interval: number; id: string }) {
  const poll = usePolling("GET /alerts", fetcher, interval);
  return <span data-testid={id}>{poll.data ?? "none"}</span>;
}

const tick = (ms: number) => act(() => vi.advanceTimersByTimeAsync(ms));

describe("shared polling", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fetches a URL once per interval for every panel that shows it", async () => {
    let n = 0;
    const fetcher = vi.fn(async () => `answer ${++n}`);
    const view = render(<>
      <Panel fetcher={fetcher} interval={30_000} id="badge" />
      <Panel fetcher={fetcher} interval={30_000} id="page" />
      <Panel fetcher={fetcher} interval={30_000} id="panel" />
    </>);
    await tick(0);
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(view.getByTestId("page").textContent).toBe("answer 1");
    expect(view.getByTestId("panel").textContent).toBe("answer 1");
    await tick(30_000);
    expect(fetcher).toHaveBeenCalledTimes(2);
    expect(view.getByTestId("badge").textContent).toBe("answer 2");
  });

  it("a panel joining later gets the data already there without a request", async () => {
    const fetcher = vi.fn(async () => "x");
    const view = render(<Panel fetcher={fetcher} interval={30_000} id="first" />);
    await tick(0);
    view.rerender(<><Panel fetcher={fetcher} interval={30_000} id="first" />
      <Panel fetcher={fetcher} interval={30_000} id="second" /></>);
    await tick(0);
    expect(view.getByTestId("second").textContent).toBe("x");
    expect(fetcher).toHaveBeenCalledTimes(1);
  });

  it("polls at the shortest interval asked, and stops when the last one leaves", async () => {
    const fetcher = vi.fn(async () => "x");
    const view = render(<><Panel fetcher={fetcher} interval={30_000} id="slow" />
      <Panel fetcher={fetcher} interval={10_000} id="fast" /></>);
    await tick(0);
    await tick(10_000);
    expect(fetcher).toHaveBeenCalledTimes(2);
    view.unmount();
    expect(polledKeys()).toEqual([]);
    await tick(60_000);
    expect(fetcher).toHaveBeenCalledTimes(2);
  });
});
