// A table without server paging pages long data itself, with the same pager, outside the part that scrolls.
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ColumnDef } from "@tanstack/react-table";
import { describe, expect, it } from "vitest";
import "../i18n";
import { DataTable } from "./DataTable";

type Row = { code: string };
const columns: ColumnDef<Row, any>[] = [{ accessorKey: "code", header: "Code" }];
const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ code: `ROW-${String(i + 1).padStart(2, "0")}` }));
const shown = () => screen.getAllByRole("cell").map((c) => c.textContent);

describe("DataTable", () => {
  it("pages more rows than a page, 25 at a time, with a pager below the scrolling region", async () => {
    const user = userEvent.setup();
    render(<DataTable label="Things" columns={columns} data={rows(30)} rowKey={(r) => r.code} />);
    expect(shown()).toHaveLength(25);
    expect(shown()[0]).toBe("ROW-01");
    const pager = screen.getByRole("navigation", { name: "Pages of Things" });
    // the pager is not inside the region that scrolls sideways, and does not scroll itself
    const region = screen.getByRole("region", { name: "Things" });
    expect(region).toHaveAttribute("data-scroll-container", "x");
    expect(region.contains(pager)).toBe(false);
    expect(within(pager).getByText("1–25 of 30")).toBeInTheDocument();
    await user.click(within(pager).getByRole("button", { name: "Go to next page" }));
    expect(shown()).toEqual(["ROW-26", "ROW-27", "ROW-28", "ROW-29", "ROW-30"]);
    expect(within(pager).getByText("26–30 of 30")).toBeInTheDocument();
  });

  it("shows the last page when the data shrink under the page shown", async () => {
    const user = userEvent.setup();
    const view = render(<DataTable label="Things" columns={columns} data={rows(60)} rowKey={(r) => r.code} />);
    await user.click(screen.getByRole("button", { name: "Go to next page" }));
    await user.click(screen.getByRole("button", { name: "Go to next page" }));
    expect(shown()[0]).toBe("ROW-51");
    view.rerender(<DataTable label="Things" columns={columns} data={rows(40)} rowKey={(r) => r.code} />);
    expect(shown()[0]).toBe("ROW-26");
    expect(screen.getByText("26–40 of 40")).toBeInTheDocument();
  });

  it("shows a short table, or one told not to page, whole and without a pager", () => {
    const view = render(<DataTable label="Things" columns={columns} data={rows(25)} rowKey={(r) => r.code} />);
    expect(shown()).toHaveLength(25);
    expect(screen.queryByRole("navigation")).toBeNull();
    view.rerender(<DataTable label="Things" columns={columns} data={rows(130)} rowKey={(r) => r.code}
                             pageLongData={false} />);
    expect(shown()).toHaveLength(130);
    expect(screen.queryByRole("navigation")).toBeNull();
  });
});
