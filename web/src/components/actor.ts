// Who did something, spelled one way in every view: the API keeps its stored value (`user:kim`, `station:S1A`,
// `device:oven-1`, `cli` …); people read the user's name, or "station S1A" / "스테이션 S1A".
import type { TFunction } from "i18next";

/** `actor` as people read it: `user:<name>` → `<name>`; a station, device, the CLI or the system named in the
 *  UI's language; anything else (a worker id a station sent) as it is. Empty → "—". */
export function actorLabel(actor: string | null | undefined, t: TFunction): string {
  const value = (actor ?? "").trim();
  if (!value) return "—";
  const colon = value.indexOf(":");
  const kind = colon > 0 ? value.slice(0, colon) : "";
  const rest = colon > 0 ? value.slice(colon + 1) : value;
  if (kind === "user") return rest;
  if (kind === "station") {
    // `station:S1A (worker? bob)`: a worker name the kernel did not know, kept beside the station
    const unknown = /^(.*?) \(worker\? (.*)\)$/.exec(rest);
    return unknown ? t("actor.stationWorker", { station: unknown[1], worker: unknown[2] })
      : t("actor.station", { station: rest });
  }
  if (kind === "device") return t("actor.device", { device: rest });
  if (kind === "system") return t("actor.system", { what: rest });
  if (value === "cli") return t("actor.cli");
  if (value === "demo") return t("actor.demo");
  return value;
}
