"""The real kernel (``mes_kernel.app.create_app``) under uvicorn in a thread, set up for one station."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mes_station.testing.contract_server import ServerThread

PROCESSES = ("ASSY-10", "TEST-20", "PACK-30")
#: The station's request timeout (``[server] timeout``) in tests against a real kernel: on a busy
#: 2-core CI machine one answer took over the 5 s the tests used to give. A request that waits on a
#: busy machine is not the server being away; no test stalls the server (an offline kernel is a
#: stopped one, which refuses a connection at once), so a longer wait costs a test nothing.
REQUEST_TIMEOUT = 60.0


@dataclass
class KernelServer:
    """A running kernel, an admin token, and the machine token of station ``ST-01``."""

    settings: Any
    server: ServerThread
    admin_headers: dict[str, str]
    station_token: str = ""
    station_code: str = "ST-01"
    line_code: str = "LINE-A"
    lots: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # generous: on a busy machine the embedded kernel's writes wait their turn at SQLite (a
        # token's creation took over 10 s while three test processes and a bench shared 2 cores)
        with httpx.Client(base_url=f"{self.base_url}/api/v1", timeout=60) as client:
            return client.request(method, path, headers=self.admin_headers, **kwargs)

    def make_lot(
        self, lot_number: str, *, units: int = 0, product: str = "PRD-100", serial_prefix: str | None = None
    ) -> list[str]:
        r = self.api("POST", "/lots", json={"lot_number": lot_number, "product": product})
        assert r.status_code == 201, r.text
        prefix = serial_prefix or lot_number
        serials = [f"{prefix}-{i:04d}" for i in range(1, units + 1)]
        if serials:
            r = self.api("POST", f"/lots/{lot_number}/units", json={"serial_numbers": serials})
            assert r.status_code == 201, r.text
        # registered a day before the work, as a plant does: a station time (a completion file's
        # finished_at, a result saved while offline) before the registration is refused
        with sqlite3.connect(self.database, timeout=30) as db:
            db.execute(
                "UPDATE lots SET created_at = datetime(created_at, '-1 day') WHERE lot_number = ?", (lot_number,)
            )
            db.execute(
                "UPDATE units SET created_at = datetime(created_at, '-1 day') "
                "WHERE lot_id = (SELECT id FROM lots WHERE lot_number = ?)",
                (lot_number,),
            )
        self.lots.append(lot_number)
        return serials

    def create_user(self, username: str, password: str, role: str = "worker") -> None:
        r = self.api("POST", "/users", json={"username": username, "password": password, "role": role})
        assert r.status_code == 201, r.text

    def add_station_device(self, code: str, kind: str, driver: str, **config: Any) -> None:
        """Configure a device of the station on its line (the line's device list is applied whole)."""
        self.devices.append(
            {"code": code, "kind": kind, "driver": driver, "station": self.station_code, "config": config}
        )
        r = self.api("PUT", f"/lines/{self.line_code}", json={"name": "Line A", "devices": self.devices})
        assert r.status_code == 200, r.text

    def upload_firmware(self, product: str, version: str, data: bytes) -> dict[str, Any]:
        r = self.api(
            "POST",
            "/firmware/images",
            data={"product": product, "version": version},
            files={"file": ("fw.bin", data, "application/octet-stream")},
        )
        assert r.status_code == 201, r.text
        return r.json()

    def set_lot_status(self, lot_number: str, status: str) -> None:
        r = self.api("PATCH", f"/lots/{lot_number}", json={"status": status})
        assert r.status_code == 200, r.text

    @property
    def database(self) -> Path:
        url = self.settings.database_url
        assert url.startswith("sqlite"), "record counting reads the embedded SQLite database"
        return Path(url.split("///", 1)[1])

    def record_keys(self) -> list[str]:
        """Every process record's idempotency key, as stored (a key twice would show twice)."""
        with sqlite3.connect(self.database, timeout=30) as db:
            return [row[0] for row in db.execute("SELECT idempotency_key FROM process_records ORDER BY id")]

    def event_keys(self) -> list[str]:
        with sqlite3.connect(self.database, timeout=30) as db:
            return [row[0] for row in db.execute("SELECT idempotency_key FROM station_events ORDER BY id")]

    def event_types(self) -> list[str]:
        """Every station event's type (``scan``, ``login``, …), as stored, oldest first."""
        with sqlite3.connect(self.database, timeout=30) as db:
            return [row[0] for row in db.execute("SELECT type FROM station_events ORDER BY id")]

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Bring the kernel back on the same port, as a fresh process would (same database)."""
        from mes_kernel.app import create_app

        self.server = ServerThread(create_app(self.settings), port=self.server.port).start(timeout=30)


def start_kernel(settings: Any, *, port: int = 0) -> KernelServer:
    """Start the kernel app on 127.0.0.1 and register station ST-01, its token and the processes."""
    from mes_kernel.app import create_app
    from mes_kernel.security import create_access_token

    server = ServerThread(create_app(settings), port=port).start(timeout=30)
    admin = create_access_token(subject="station-kit", role="admin", uid=0, secret=settings.secret_key, minutes=60)
    kernel = KernelServer(settings, server, {"Authorization": f"Bearer {admin}"})
    r = kernel.api("PUT", f"/lines/{kernel.line_code}", json={"name": "Line A"})
    assert r.status_code == 200, r.text
    r = kernel.api(
        "POST", "/stations", json={"code": kernel.station_code, "name": "Station 1", "line": kernel.line_code}
    )
    assert r.status_code == 201, r.text
    r = kernel.api("POST", f"/stations/{kernel.station_code}/tokens", json={"name": "test"})
    assert r.status_code == 201, r.text
    kernel.station_token = r.json()["token"]
    for seq, pid in enumerate(PROCESSES):
        r = kernel.api("POST", "/processes", json={"id": pid, "name": pid, "sequence": (seq + 1) * 10})
        assert r.status_code in (201, 409), r.text
    return kernel


def embedded_kernel_settings(work: Path) -> Any:
    """Settings for a migrated, embedded (SQLite) kernel in ``work``, with limits out of the way:
    what the station benchmarks and end-to-end tests run against."""
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    settings = Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{work / 'mes.db'}",
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        files_dir=str(work / "files"),
        log_level="WARNING",
        log_json=False,
        rate_limit_per_minute=100_000,
        station_rate_limit_per_minute=100_000,
        _env_file=None,
    )
    upgrade(settings)
    return settings
