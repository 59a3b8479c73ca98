"""The spec's load test: managers with dashboards open, polling as the web does, and workers recording
through station tokens at a combined 20 records/s.

    pip install -e '.[bench]'
    MES_ADMIN_PASSWORD=… locust -f bench/locustfile.py --headless -u 100 -r 20 -t 60s --host http://127.0.0.1:8000

At start (``test_start``) it logs in as the admin (``MES_ADMIN_USERNAME``, default ``admin``) and
creates what the run needs: a line and a shift calendar, two routing steps, a LOT with units, one
station per worker user with its machine token, and manager accounts (rate limits are per account:
five managers share one, logged in once; tokens last 15 minutes). Of the users,
``MES_LOCUST_WORKERS`` (default 10) record; the rest are managers — production, quality and
executive in turn — each polling its view's endpoints at the web's intervals (summary 10 s,
alerts 30 s, panels 10–60 s, KPI views 30–60 s). Bounded by ``-t`` (which counts the set-up too:
give it 30 s more); traffic only to ``--host``. Locust's summary gives failures and p95 per endpoint.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid

from locust import HttpUser, between, constant_throughput, events, task

WORKERS = int(os.environ.get("MES_LOCUST_WORKERS", "10"))
RECORDS_PER_SECOND = float(os.environ.get("MES_LOCUST_RECORDS_PER_SECOND", "20"))
RUN = os.environ.get("MES_LOCUST_RUN", uuid.uuid4().hex[:6].upper())
LINE, LOT, UNITS = f"LOAD-{RUN}", f"LOT-LOAD-{RUN}", 2000
PASSWORD = "locust-password-0123"
MANAGERS_PER_ACCOUNT = 5
SHIFTS = [
    {"name": n, "start": s, "end": e, "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 900}
    for n, s, e in (("A", "06:00", "14:00"), ("B", "14:00", "22:00"), ("C", "22:00", "06:00"))
]
shared: dict = {"stations": [], "managers": []}
_next_station = itertools.count()
_next_manager = itertools.count()
_lock = threading.Lock()


@events.test_start.add_listener
def prepare(environment, **_):
    """Create the line, LOT, stations with tokens and manager accounts through the API."""
    import httpx

    host = environment.host
    with httpx.Client(base_url=host, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/login",
            json={
                "username": os.environ.get("MES_ADMIN_USERNAME", "admin"),
                "password": os.environ["MES_ADMIN_PASSWORD"],
            },
        )
        login.raise_for_status()
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        client.put(f"/api/v1/lines/{LINE}", json={"name": "load test"})
        client.put(f"/api/v1/lines/{LINE}/shifts", json={"shifts": SHIFTS})
        for seq, pid in ((10, "LOAD-10"), (20, "LOAD-20")):
            client.post("/api/v1/processes", json={"id": pid, "name": pid, "sequence": seq})
        client.post("/api/v1/lots", json={"lot_number": LOT, "product": "LOAD", "line": LINE})
        client.post(f"/api/v1/lots/{LOT}/units", json={"serial_numbers": [f"{LOT}-{i:05d}" for i in range(UNITS)]})
        users = environment.runner.target_user_count if environment.runner else 100
        for i in range(WORKERS):
            code = f"LOAD-{RUN}-ST{i:02d}"
            client.post("/api/v1/stations", json={"code": code, "line": LINE})
            token = client.post(f"/api/v1/stations/{code}/tokens", json={"name": "locust"})
            token.raise_for_status()
            shared["stations"].append(token.json()["token"])
        # One account per few managers, logged in once here: the per-account rate limit (100/min)
        # holds, and the run measures polling rather than bcrypt.
        roles = ("production_manager", "quality_manager", "executive")
        managers = max(1, users - WORKERS)
        for i in range(min(managers, 3 * -(-managers // (3 * MANAGERS_PER_ACCOUNT)))):
            name, role = f"load-{RUN.lower()}-{i:03d}", roles[i % 3]
            client.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": role})
            login = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            login.raise_for_status()
            shared["managers"].append((login.json()["access_token"], role))


class Worker(HttpUser):
    """A station recording results for units of the LOT, at its share of the combined rate."""

    weight = WORKERS
    fixed_count = WORKERS
    wait_time = constant_throughput(RECORDS_PER_SECOND / WORKERS)

    def on_start(self):
        with _lock:
            index = next(_next_station)
        self.client.headers["Authorization"] = f"Bearer {shared['stations'][index % len(shared['stations'])]}"
        self.serials = itertools.cycle(range(index, UNITS, WORKERS))

    @task
    def record(self):
        n = next(self.serials)
        result = "fail" if n % 17 == 0 else "pass"
        self.client.post(
            "/api/v1/process-records",
            name="POST /process-records",
            json={
                "idempotency_key": uuid.uuid4().hex,
                "lot_number": LOT,
                "process_id": "LOAD-10" if n % 2 else "LOAD-20",
                "worker_id": f"W-{n % 30}",
                "serial_number": f"{LOT}-{n:05d}",
                "result": result,
                "defect_code": "SOLDER" if result == "fail" else None,
                "data": {"cycle_seconds": 30 + n % 9},
            },
        )


class Manager(HttpUser):
    """A manager's browser with the dashboard open: each endpoint at the web's polling interval
    (tasks weighted by how often the page asks for them, one wait of ~10 s between rounds)."""

    wait_time = between(9, 11)

    def on_start(self):
        with _lock:
            index = next(_next_manager)
        token, self.role = shared["managers"][index % len(shared["managers"])]
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.rounds = 0

    @task
    def poll(self):
        self.rounds += 1
        get = self.client.get
        get("/api/v1/dashboard/summary", name="GET /dashboard/summary")  # every 10 s
        get("/api/v1/dashboard/kpi/yield", name="GET /dashboard/kpi/yield")  # every 10 s
        if self.rounds % 3 == 1:  # every 30 s
            get("/api/v1/alerts", name="GET /alerts")
            get("/api/v1/dashboard/kpi/defects", name="GET /dashboard/kpi/defects")
            if self.role == "production_manager":
                get("/api/v1/kpi/lines/now", name="GET /kpi/lines/now")
            elif self.role == "quality_manager":
                get("/api/v1/kpi/pareto", params={"line": LINE}, name="GET /kpi/pareto")
                get("/api/v1/kpi/yield", params={"group_by": "station"}, name="GET /kpi/yield")
        if self.rounds % 6 == 1:  # every 60 s
            get("/api/v1/dashboard/kpi/throughput", name="GET /dashboard/kpi/throughput")
            if self.role == "executive":
                get("/api/v1/kpi/oee", params={"line": LINE}, name="GET /kpi/oee")
                get("/api/v1/kpi/output", params={"bucket": "week"}, name="GET /kpi/output")
            if self.role == "quality_manager":
                get(f"/api/v1/lots/{LOT}/history", params={"limit": 100}, name="GET /lots/{lot}/history")
