// Charts of the quality and executive views (Recharts; loaded lazily, with the panels' charts).
import {
  Bar,
  BarChart,
  CartesianGrid,
  ComposedChart,
  Legend,
  Line,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import { useTranslation } from "react-i18next";
import type { OutputItem, ParetoItem, YieldItem } from "../api/types";
import { formatNumber, formatPercent, formatPercentPoints } from "../i18n/format";

const BLUE = "#1565c0";
const GREEN = "#2e7d32";
const ORANGE = "#e65100";
const margin = { top: 8, right: 12, bottom: 0, left: 0 };
const tickNumber = (v: unknown) => formatNumber(Number(v));
const tickPercent = (v: unknown) => formatPercent(Number(v));
/** A category axis that names every bar (Recharts' default drops labels that would overlap — on a phone the
 *  first bar's), slanted so long codes fit side by side. */
const categoryAxis = { interval: 0, angle: -30, textAnchor: "end", height: 56, fontSize: 12 } as const;

export function ParetoChart({ items, onPick, height = 260 }: {
  items: ParetoItem[];
  onPick?(code: string): void;
  height?: number;
}) {
  const { t } = useTranslation();
  const pick = (entry: unknown) => {
    const code = (entry as { payload?: ParetoItem } | undefined)?.payload?.defect_code;
    if (code && onPick) onPick(code);
  };
  return (
    <ResponsiveContainer width="100%" height={height}>
      <ComposedChart data={items} margin={margin}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="defect_code" {...categoryAxis} />
        <YAxis yAxisId="count" allowDecimals={false} fontSize={12} tickFormatter={tickNumber} />
        <YAxis yAxisId="cumulative" orientation="right" domain={[0, 100]} fontSize={12}
               tickFormatter={(v) => formatPercentPoints(Number(v))} />
        <Tooltip formatter={(value, name) => name === t("quality.cumulative")
          ? formatPercentPoints(Number(value)) : formatNumber(Number(value))} />
        <Legend verticalAlign="top" height={28} />
        <Bar yAxisId="count" dataKey="count" name={t("quality.count")} fill={BLUE} isAnimationActive={false}
             maxBarSize={64} onClick={pick} cursor={onPick ? "pointer" : undefined} />
        <Line yAxisId="cumulative" dataKey="cumulative_percent" name={t("quality.cumulative")} stroke={ORANGE}
              strokeWidth={2} isAnimationActive={false} />
      </ComposedChart>
    </ResponsiveContainer>
  );
}

export function YieldChart({ items, onPick, height = 260 }: {
  items: YieldItem[];
  onPick?(key: string): void;
  height?: number;
}) {
  const { t } = useTranslation();
  const pick = (entry: unknown) => {
    const key = (entry as { payload?: YieldItem } | undefined)?.payload?.key;
    if (key && onPick) onPick(key);
  };
  return (
    <ResponsiveContainer width="100%" height={height}>
      <BarChart data={items} margin={margin}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="key" {...categoryAxis} />
        <YAxis domain={[0, 1]} fontSize={12} tickFormatter={tickPercent} />
        <Tooltip formatter={(value) => formatPercent(Number(value))} />
        <Legend verticalAlign="top" height={28} />
        <Bar dataKey="first_pass_yield" name={t("quality.firstPassYield")} fill={BLUE} isAnimationActive={false}
             maxBarSize={48} onClick={pick} cursor={onPick ? "pointer" : undefined} />
        <Bar dataKey="final_yield" name={t("quality.finalYield")} fill={GREEN} isAnimationActive={false}
             maxBarSize={48} onClick={pick} cursor={onPick ? "pointer" : undefined} />
      </BarChart>
    </ResponsiveContainer>
  );
}

/** A week on the executive charts: its label and tooltip from `weekLabel` (i18n/weeks.ts), one way on both. */
export interface WeekNamed {
  label: string;
  tooltip: string;
}

const weekTooltip = (_label: unknown, payload: readonly { payload?: WeekNamed }[] | undefined) =>
  payload?.[0]?.payload?.tooltip ?? String(_label);

export type OutputWeek = OutputItem & WeekNamed;

export function OutputChart({ items, height = 220 }: { items: OutputWeek[]; height?: number }) {
  const { t } = useTranslation();
  const hasPlan = items.some((i) => i.plan !== null && i.plan !== undefined);
  return (
    <ResponsiveContainer width="100%" height={height}>
      <ComposedChart data={items} margin={margin}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="label" fontSize={12} minTickGap={16} />
        <YAxis allowDecimals={false} fontSize={12} tickFormatter={tickNumber} />
        <Tooltip labelFormatter={weekTooltip} formatter={(value) => formatNumber(Number(value))} />
        <Legend verticalAlign="top" height={28} />
        {/* made against plan only: items first tried at the step are other items, not a total to divide by */}
        <Bar dataKey="good" name={t("executive.made")} fill={GREEN} isAnimationActive={false} maxBarSize={40} />
        {hasPlan && <Line dataKey="plan" name={t("executive.plan")} stroke={ORANGE} strokeWidth={2}
                          isAnimationActive={false} />}
      </ComposedChart>
    </ResponsiveContainer>
  );
}

export interface WeeklyOee extends WeekNamed {
  oee: number | null;
}

export function WeeklyOeeChart({ items, height = 200 }: { items: WeeklyOee[]; height?: number }) {
  const { t } = useTranslation();
  return (
    <ResponsiveContainer width="100%" height={height}>
      <ComposedChart data={items} margin={margin}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="label" fontSize={12} minTickGap={16} />
        <YAxis domain={[0, 1]} fontSize={12} tickFormatter={tickPercent} />
        <Tooltip labelFormatter={weekTooltip} formatter={(value) => formatPercent(Number(value))} />
        <Legend verticalAlign="top" height={28} />
        <Line dataKey="oee" name={t("kpi.oee")} stroke={BLUE} strokeWidth={2} isAnimationActive={false} connectNulls={false} />
      </ComposedChart>
    </ResponsiveContainer>
  );
}
