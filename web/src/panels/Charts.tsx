// Line and bar charts for timeseries and bar panels (Recharts; loaded lazily, in its own chunk).
import {
  Area,
  AreaChart,
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import { axisLabel, formatValue, type SeriesView } from "./panelData";

/** Axis ticks and tooltip values through the dashboard's one number format. */
const tickNumber = (value: unknown) => formatValue(Number(value));
const tipValue = (value: unknown) => formatValue(typeof value === "number" ? value : Number(value));

const PALETTE = ["#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037"];

/** Colours that read as the words: pass green, fail red; the rest from the palette. */
export function colorOf(series: string, index: number): string {
  if (/^(pass|ok|done|up)$/i.test(series)) return PALETTE[0];
  if (/^(fail|failed|error|down)$/i.test(series)) return PALETTE[1];
  return PALETTE[(index + 2) % PALETTE.length];
}

interface ChartProps {
  view: SeriesView;
  stacked?: boolean;
  height?: number;
}

export function TimeseriesChart({ view, stacked, height = 220 }: ChartProps) {
  const axes = [
    <CartesianGrid key="grid" strokeDasharray="3 3" />,
    <XAxis key="x" dataKey={view.x} tickFormatter={axisLabel} minTickGap={24} fontSize={12} />,
    <YAxis key="y" allowDecimals={false} fontSize={12} tickFormatter={tickNumber} />,
    <Tooltip key="tip" labelFormatter={(label) => axisLabel(label)} formatter={tipValue} />,
    view.series.length > 1 ? <Legend key="legend" verticalAlign="top" height={28} /> : null,
  ];
  const margin = { top: 8, right: 12, bottom: 0, left: -12 };
  return (
    <ResponsiveContainer width="100%" height={height}>
      {stacked ? (
        <AreaChart data={view.rows} margin={margin}>
          {axes}
          {view.series.map((s, i) => (
            <Area key={s} type="monotone" dataKey={s} name={view.labels?.[s] ?? s} stackId="stack" stroke={colorOf(s, i)} fill={colorOf(s, i)}
                  fillOpacity={0.35} isAnimationActive={false} />
          ))}
        </AreaChart>
      ) : (
        <LineChart data={view.rows} margin={margin}>
          {axes}
          {view.series.map((s, i) => (
            <Line key={s} type="monotone" dataKey={s} name={view.labels?.[s] ?? s} stroke={colorOf(s, i)} dot={false} strokeWidth={2}
                  isAnimationActive={false} />
          ))}
        </LineChart>
      )}
    </ResponsiveContainer>
  );
}

export function BarsChart({ view, stacked, height = 220 }: ChartProps) {
  return (
    <ResponsiveContainer width="100%" height={height}>
      <BarChart data={view.rows} margin={{ top: 8, right: 12, bottom: 0, left: -12 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey={view.x} tickFormatter={axisLabel} fontSize={12} />
        <YAxis allowDecimals={false} fontSize={12} tickFormatter={tickNumber} />
        <Tooltip formatter={tipValue} />
        {view.series.length > 1 && <Legend verticalAlign="top" height={28} />}
        {view.series.map((s, i) => (
          <Bar key={s} dataKey={s} name={view.labels?.[s] ?? s} fill={view.series.length === 1 ? PALETTE[2] : colorOf(s, i)}
               stackId={stacked ? "stack" : undefined} isAnimationActive={false} maxBarSize={64} />
        ))}
      </BarChart>
    </ResponsiveContainer>
  );
}
