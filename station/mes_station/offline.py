"""Answers the agent gives from its offline cache: scan lookups shaped as the server's, next process
from the cached routing plus the passes still queued in the outbox."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mes_station.cache import StationCache
from mes_station.errors import UnknownCodeError
from mes_station.outbox import PROCESS_RECORD, QUEUED, Outbox

log = logging.getLogger(__name__)


def parse_scanned(code: str, symbology: str | None) -> tuple[str | None, str | None]:
    """``(serial_number, lot_number)`` in a scanned code, read by the barcode plugin's parser when it
    is installed at the station (it is, with the scanner drivers); ``(None, None)`` otherwise."""
    try:
        from mes_barcode_hid.parsing import parse_code
    except ImportError:
        return None, None
    try:
        parsed = parse_code(code, symbology=symbology)
    except Exception:  # the parser promises not to raise; a station must not fall over if it does
        log.exception("scan parser failed on %r", code)
        return None, None
    return parsed.serial_number, parsed.lot_number


def gs1_misread(code: str, symbology: str | None) -> str | None:
    """Why a code that announces GS1 (identifier, GS, ``(01)…``, or a check digit read) is refused
    by the barcode plugin's parser — a misread the server would answer 404 ``UNKNOWN_CODE`` — else
    None (also for text that announces nothing: a plant's own serial scheme is the server's call)."""
    try:
        from mes_barcode_hid.parsing import GS1_SYMBOLOGIES, parse_code, split_symbology
    except ImportError:
        return None
    try:
        parsed = parse_code(code, symbology=symbology)
        aim, data = split_symbology(code)
    except Exception:  # the parser promises not to raise; a station must not fall over if it does
        log.exception("scan parser failed on %r", code)
        return None
    if parsed.kind != "unknown":
        return None
    announced = (
        parsed.format == "gs1"
        or (symbology or aim or parsed.symbology) in GS1_SYMBOLOGIES
        or "\x1d" in data
        or data.lstrip().startswith("(")
    )
    return (parsed.reason or "not a valid GS1 label") if announced else None


def queued_passes(outbox: Outbox) -> list[tuple[str | None, str | None, str]]:
    """``(serial_number, lot_number, process_id)`` of every pass still waiting in the outbox."""
    out = []
    for ev in outbox.iter_all(QUEUED):
        body = ev.body
        if ev.kind == PROCESS_RECORD and body.get("result") == "pass":
            out.append((body.get("serial_number"), body.get("lot_number"), str(body.get("process_id"))))
    return out


def _next(processes: list[dict[str, Any]], done: Iterable[str]) -> tuple[dict[str, Any] | None, list[str]]:
    done = set(done)
    completed = [p["id"] for p in processes if p["id"] in done]
    upcoming = next((p for p in processes if p["id"] not in done), None)
    if upcoming is not None:
        upcoming = {"id": upcoming["id"], "name": upcoming["name"], "sequence": upcoming["sequence"]}
    return upcoming, completed


def _warnings(lot: dict[str, Any]) -> list[str]:
    return [f"LOT {lot['lot_number']} is {lot['status']}"] if lot["status"] in ("on_hold", "closed", "scrapped") else []


def lookup_from_cache(
    cache: StationCache, outbox: Outbox, code: str, *, symbology: str | None = None
) -> dict[str, Any]:
    """What ``POST /scans/lookup`` would answer, from the cache, plus ``"source": "cache"``.

    A code the cache does not know answers ``{"kind": "unknown", "code", "serial_number": code,
    "source": "cache"}`` (with the LOT number when the label carries one): the worker may still
    record against it, and the agent finds the unit's LOT on the server before sending.
    """
    text = code.strip()
    serial, lot_number = (text, None) if cache.unit(text) else (None, text if cache.lot(text) else None)
    if serial is None and lot_number is None:
        misread = gs1_misread(text, symbology)
        if misread is not None:
            raise UnknownCodeError(f"{text!r} is not a known code: {misread}")
        serial, lot_number = parse_scanned(text, symbology)
    processes = cache.processes()
    local = queued_passes(outbox)
    unit = cache.unit(serial) if serial else None
    if unit is not None:
        lot = cache.lot(unit["lot_number"]) or {
            "lot_number": unit["lot_number"],
            "product": "",
            "status": "unknown",
            "quantity": 0,
            "units": 0,
            "completed_processes": [],
        }
        done = set(unit["completed_processes"]) | {
            p for s, lo, p in local if s == unit["serial_number"] or (s is None and lo == unit["lot_number"])
        }
        upcoming, completed = _next(processes, done)
        warnings = _warnings(lot)
        if lot_number and lot_number != lot["lot_number"]:
            warnings.append(f"label says LOT {lot_number}, the unit belongs to LOT {lot['lot_number']}")
        return {
            "kind": "unit",
            "code": code,
            "unit": {"serial_number": unit["serial_number"], "status": unit["status"], "lot_number": lot["lot_number"]},
            "lot": {k: lot[k] for k in ("lot_number", "product", "status", "quantity", "units")},
            "next_process": upcoming,
            "completed_processes": completed,
            "warnings": warnings,
            "source": "cache",
        }
    lot = cache.lot(lot_number) if lot_number and not serial else None
    if lot is not None:
        done = set(lot["completed_processes"]) | {p for s, lo, p in local if s is None and lo == lot["lot_number"]}
        upcoming, completed = _next(processes, done)
        return {
            "kind": "lot",
            "code": code,
            "unit": None,
            "lot": {k: lot[k] for k in ("lot_number", "product", "status", "quantity", "units")},
            "next_process": upcoming,
            "completed_processes": completed,
            "warnings": _warnings(lot),
            "source": "cache",
        }
    answer: dict[str, Any] = {"kind": "unknown", "code": code, "source": "cache", "serial_number": serial or text}
    known_lot = cache.lot(lot_number) if lot_number else None
    if known_lot is not None:
        answer["lot"] = {k: known_lot[k] for k in ("lot_number", "product", "status", "quantity", "units")}
    elif lot_number:
        answer["lot_number"] = lot_number
    return answer
