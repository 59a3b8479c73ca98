// One unit by serial number: its LOT and its own history (traceability), paged newest first.
import Alert from "@mui/material/Alert";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import Typography from "@mui/material/Typography";
import { useTranslation } from "react-i18next";
import type { UnitHistory } from "../api/types";
import { ErrorNotice, LotStatusChip, PageTitle, Section } from "../components/common";
import { HistoryTable } from "../components/HistoryTable";
import { useHistory } from "../hooks/useHistory";
import { hrefOf } from "../router";

export function UnitPage({ serialNumber }: { serialNumber: string }) {
  const { t } = useTranslation();
  const history = useHistory<UnitHistory>({ kind: "unit", serialNumber }, 15_000);
  const unit = history.latest;
  const data = unit.data?.serial_number === serialNumber ? unit.data : undefined;
  return (
    <>
      <PageTitle action={<Button href={hrefOf({ name: "lots" })}>{t("lot.all")}</Button>}>
        {t("unit.title", { serial: serialNumber })}
      </PageTitle>
      {unit.error?.status === 404 ? (
        <Alert severity="warning">{t("unit.missing", { serial: serialNumber })}</Alert>
      ) : !data && <ErrorNotice error={unit.error} retryInMs={unit.retryInMs} />}
      {data && (
        <Section title={t("history.title")}>
          <Typography sx={{ mb: 1 }}>
            {t("unit.inLot")}{" "}
            <Link href={hrefOf({ name: "lot", lotNumber: data.lot_number })}>{data.lot_number}</Link>
            {` (${data.product}) `}<LotStatusChip status={data.lot_status} />
          </Typography>
          <HistoryTable history={history} label={t("unit.history")} />
        </Section>
      )}
    </>
  );
}
