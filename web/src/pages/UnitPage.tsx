// One unit by serial number: its LOT and its own history (traceability).
import { useCallback } from "react";
import Alert from "@mui/material/Alert";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import Typography from "@mui/material/Typography";
import { endpoints } from "../api/endpoints";
import { DataTable } from "../components/DataTable";
import { ErrorNotice, LotStatusChip, PageTitle, Section } from "../components/common";
import { usePolling } from "../hooks/usePolling";
import { hrefOf } from "../router";
import { historyColumns } from "./LotDetailPage";

export function UnitPage({ serialNumber }: { serialNumber: string }) {
  const fetcher = useCallback((signal: AbortSignal) => endpoints.unitHistory(serialNumber, signal), [serialNumber]);
  const unit = usePolling(`unit:${serialNumber}`, fetcher, 15_000);
  const data = unit.data?.serial_number === serialNumber ? unit.data : undefined;
  return (
    <>
      <PageTitle action={<Button href={hrefOf({ name: "lots" })}>All LOTs</Button>}>Unit {serialNumber}</PageTitle>
      {unit.error?.status === 404 ? (
        <Alert severity="warning">No unit has serial number {serialNumber}.</Alert>
      ) : (
        <ErrorNotice error={unit.error} retryInMs={unit.retryInMs} />
      )}
      {data && (
        <Section title="History">
          <Typography sx={{ mb: 1 }}>
            In LOT <Link href={hrefOf({ name: "lot", lotNumber: data.lot_number })}>{data.lot_number}</Link>
            {" "}({data.product}) <LotStatusChip status={data.lot_status} />
          </Typography>
          <DataTable label="Unit history" columns={historyColumns} data={data.events}
                     emptyText="No process record or device action yet" />
        </Section>
      )}
    </>
  );
}
