// A TanStack table drawn with MUI; paging is the server's (total + page change), or this table's own for
// long data. The pager sits below the table, outside the region that scrolls sideways, and wraps on a phone.
import { useState } from "react";
import {
  flexRender,
  getCoreRowModel,
  useReactTable,
  type ColumnDef,
  type PaginationState,
} from "@tanstack/react-table";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TablePagination from "@mui/material/TablePagination";
import TableRow from "@mui/material/TableRow";
import TableContainer from "@mui/material/TableContainer";
import { useTranslation } from "react-i18next";
import { formatNumber } from "../i18n/format";

export interface ServerPaging {
  pageIndex: number;
  pageSize: number;
  total: number;
  onChange(next: PaginationState): void;
}

interface Props<T> {
  columns: ColumnDef<T, any>[];
  data: T[];
  paging?: ServerPaging;
  onRowClick?(row: T): void;
  rowKey?(row: T): string;
  emptyText?: string;
  size?: "small" | "medium";
  label?: string;
  /** Without server paging, more rows than a page (25) are paged here; false shows them all (a history
   *  that loads older pages itself). */
  pageLongData?: boolean;
}

export const PAGE_SIZES = [10, 25, 50, 100];
/** Rows per page of a table paged here (one without server paging). */
export const LOCAL_PAGE_SIZE = 25;

/**
 * MUI's pager is a scroll container of its own (`overflow: auto`) laid out on one line: on a phone its
 * last buttons ("next page") sat past the right edge, reached only by scrolling the pager sideways.
 * Here nothing scrolls: its parts wrap onto a second line, the page buttons at the right.
 */
const PAGER_SX = {
  overflow: "visible",
  "& .MuiTablePagination-toolbar": {
    flexWrap: "wrap", justifyContent: "flex-end", alignItems: "center", columnGap: 1, rowGap: 0.5,
    px: { xs: 1, sm: 2 }, minHeight: 52,
  },
  "& .MuiTablePagination-spacer": { display: "none" },
  "& .MuiTablePagination-input": { ml: 0.5, mr: { xs: 1, sm: 3 } },
  "& .MuiTablePagination-actions": { ml: { xs: 0, sm: 1.5 }, flexShrink: 0 },
} as const;

export function DataTable<T>({ columns, data, paging, onRowClick, rowKey, emptyText, size = "small",
                               label, pageLongData = true }: Props<T>) {
  const { t } = useTranslation();
  const [local, setLocal] = useState<PaginationState>({ pageIndex: 0, pageSize: LOCAL_PAGE_SIZE });
  const pagedHere = !paging && pageLongData && data.length > Math.min(LOCAL_PAGE_SIZE, local.pageSize);
  const pager: ServerPaging | undefined = paging
    ?? (pagedHere ? { ...local, total: data.length, onChange: setLocal } : undefined);
  // a page past the end (the data shrank) shows the last one
  const pageIndex = pager
    ? Math.min(pager.pageIndex, Math.max(0, Math.ceil(pager.total / pager.pageSize) - 1)) : 0;
  const rows = pagedHere ? data.slice(pageIndex * local.pageSize, (pageIndex + 1) * local.pageSize) : data;
  const table = useReactTable({
    data: rows,
    columns,
    getCoreRowModel: getCoreRowModel(),
    manualPagination: true,
    rowCount: pager?.total ?? data.length,
    state: pager ? { pagination: { pageIndex, pageSize: pager.pageSize } } : undefined,
    onPaginationChange: (updater) => {
      if (!pager) return;
      const current = { pageIndex, pageSize: pager.pageSize };
      pager.onChange(typeof updater === "function" ? updater(current) : updater);
    },
    getRowId: rowKey ? (row) => rowKey(row) : undefined,
  });

  return (
    <>
      {/* Wide tables scroll sideways on a phone: the region takes keyboard focus so it can be scrolled. It is
          the one part of a page declared to scroll sideways (data-scroll-container; the e2e test holds the rest
          to the screen's width). */}
      <TableContainer tabIndex={0} role={label ? "region" : undefined} aria-label={label} data-scroll-container="x">
        <Table size={size} aria-label={label}>
          <TableHead>
            {table.getHeaderGroups().map((group) => (
              <TableRow key={group.id}>
                {group.headers.map((header) => (
                  <TableCell key={header.id} sx={{ fontWeight: 600, whiteSpace: "nowrap" }}>
                    {header.isPlaceholder ? null : flexRender(header.column.columnDef.header, header.getContext())}
                  </TableCell>
                ))}
              </TableRow>
            ))}
          </TableHead>
          <TableBody>
            {table.getRowModel().rows.length === 0 ? (
              <TableRow>
                <TableCell colSpan={columns.length} sx={{ color: "text.secondary", textAlign: "center", py: 3 }}>
                  {emptyText ?? t("common.nothing")}
                </TableCell>
              </TableRow>
            ) : (
              table.getRowModel().rows.map((row) => (
                <TableRow
                  key={row.id}
                  hover={!!onRowClick}
                  onClick={onRowClick ? () => onRowClick(row.original) : undefined}
                  sx={onRowClick ? { cursor: "pointer" } : undefined}
                >
                  {row.getVisibleCells().map((cell) => (
                    <TableCell key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</TableCell>
                  ))}
                </TableRow>
              ))
            )}
          </TableBody>
        </Table>
      </TableContainer>
      {pager && (
        <TablePagination
          component="div"
          role="navigation"
          aria-label={label ? t("table.pagesOf", { table: label }) : t("table.pages")}
          data-testid="pager"
          sx={PAGER_SX}
          count={pager.total}
          page={pageIndex}
          rowsPerPage={pager.pageSize}
          rowsPerPageOptions={PAGE_SIZES}
          labelRowsPerPage={t("table.rowsPerPage")}
          labelDisplayedRows={({ from, to, count }) => t("table.displayed", {
            from: formatNumber(from), to: formatNumber(to), count: formatNumber(count) })}
          getItemAriaLabel={(type) => t(`table.${type}`)}
          onPageChange={(_, page) => table.setPageIndex(page)}
          onRowsPerPageChange={(event) => pager.onChange({ pageIndex: 0, pageSize: Number(event.target.value) })}
        />
      )}
    </>
  );
}
