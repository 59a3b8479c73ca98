// Open alerts, polled once by the shell (every 30 s) and read by the badge and the alerts page.
import { create } from "zustand";
import type { ApiError } from "../api/client";
import type { AlertList } from "../api/types";

interface AlertsState {
  data: AlertList | undefined;
  error: ApiError | undefined;
  retryInMs: number | undefined;
  updatedAt: number | undefined;
  refresh: () => void;
}

export const useAlerts = create<AlertsState>()(() => ({
  data: undefined,
  error: undefined,
  retryInMs: undefined,
  updatedAt: undefined,
  refresh: () => undefined,
}));
