// A TanStack table drawn with MUI; paging is either the server's (total + page change) or none.
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
}

export const PAGE_SIZES = [10, 25, 50, 100];

export function DataTable<T>({ columns, data, paging, onRowClick, rowKey, emptyText, size = "small",
                               label }: Props<T>) {
  const { t } = useTranslation();
  const table = useReactTable({
    data,
    columns,
    getCoreRowModel: getCoreRowModel(),
    manualPagination: true,
    rowCount: paging?.total ?? data.length,
    state: paging ? { pagination: { pageIndex: paging.pageIndex, pageSize: paging.pageSize } } : undefined,
    onPaginationChange: (updater) => {
      if (!paging) return;
      const current = { pageIndex: paging.pageIndex, pageSize: paging.pageSize };
      paging.onChange(typeof updater === "function" ? updater(current) : updater);
    },
    getRowId: rowKey ? (row) => rowKey(row) : undefined,
  });

  return (
    <>
      {/* Wide tables scroll sideways on a phone: the region takes keyboard focus so it can be scrolled. */}
      <TableContainer tabIndex={0} role={label ? "region" : undefined} aria-label={label}>
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
      {paging && (
        <TablePagination
          component="div"
          count={paging.total}
          page={Math.min(paging.pageIndex, Math.max(0, Math.ceil(paging.total / paging.pageSize) - 1))}
          rowsPerPage={paging.pageSize}
          rowsPerPageOptions={PAGE_SIZES}
          labelRowsPerPage={t("table.rowsPerPage")}
          labelDisplayedRows={({ from, to, count }) => t("table.displayed", {
            from: formatNumber(from), to: formatNumber(to), count: formatNumber(count) })}
          getItemAriaLabel={(type) => t(`table.${type}`)}
          onPageChange={(_, page) => table.setPageIndex(page)}
          onRowsPerPageChange={(event) => paging.onChange({ pageIndex: 0, pageSize: Number(event.target.value) })}
        />
      )}
    </>
  );
}
