// A component that throws is replaced by a notice; new data gives it another try.
import { render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { ErrorBoundary } from "./ErrorBoundary";

function Fragile({ data }: { data: { rows?: string[] } }) {
  return <p>{(data.rows as string[]).join(", ")}</p>;
}

describe("ErrorBoundary", () => {
  it("shows what failed instead of blanking the page, and recovers on new data", () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const bad = {};
    const view = render(
      <div>
        <ErrorBoundary what="panel “Scrap”" resetKey={bad}><Fragile data={bad} /></ErrorBoundary>
        <p>other panel</p>
      </div>,
    );
    expect(screen.getByText(/Cannot show panel “Scrap”/)).toBeInTheDocument();
    expect(screen.getByText("other panel")).toBeInTheDocument();
    const good = { rows: ["a", "b"] };
    view.rerender(
      <div>
        <ErrorBoundary what="panel “Scrap”" resetKey={good}><Fragile data={good} /></ErrorBoundary>
        <p>other panel</p>
      </div>,
    );
    expect(screen.getByText("a, b")).toBeInTheDocument();
    quiet.mockRestore();
    warn.mockRestore();
  });
});
