"""gunicorn settings for the kernel: uvicorn workers, Prometheus multiprocess mode, JSON logs, one access log.

Run: ``gunicorn -c deploy/gunicorn.conf.py`` (the app factory is named here). Every value comes
from the environment so the same file serves systemd, Docker and Railway.

Environment:
    BIND                     address to listen on (default ``127.0.0.1:8000``; nginx sits in front)
    WORKERS                  worker processes (default 2 x CPU cores, the spec); exported back so the
                             kernel sizes its database pools for the same count
    PROMETHEUS_MULTIPROC_DIR where workers write metric files (default: a private directory under
                             the system temp dir, removed at exit); emptied when the master starts
    FORWARDED_ALLOW_IPS      the proxy (nginx) addresses whose X-Forwarded-For/-Proto are trusted, comma-
                             separated (default ``127.0.0.1``). Never ``*``: any client could then choose
                             the address written into the audit trail and counted by per-address limits
    GUNICORN_ACCESS_LOG      ``1`` to add gunicorn's access log; off by default because the kernel
                             already logs every request as one JSON line (event ``request``) with its
                             route, status, duration, request id, principal and client address
    LOG_LEVEL                gunicorn's own log level (default ``info``)
"""

import os
import shutil
import tempfile
from pathlib import Path

wsgi_app = "mes_kernel.app:create_app()"

# uvicorn_worker's UvicornWorker (uvicorn.workers is deprecated since uvicorn 0.30) without the
# ``server: uvicorn`` header.
worker_class = "mes_kernel.gunicorn_worker.MesUvicornWorker"

bind = [os.environ.get("BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WORKERS") or 0) or 2 * (os.cpu_count() or 1)
os.environ["WORKERS"] = str(workers)

# A request that takes longer than nginx's 30 s proxy timeout has no one left waiting for it.
timeout = 30
graceful_timeout = 30
# Longer than nginx's upstream keepalive (60 s), so nginx, not us, closes idle connections and
# never reuses one we are closing.
keepalive = 75
# Recycle workers now and then; jitter keeps them from restarting together.
max_requests = 10000
max_requests_jitter = 1000

forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): a second
# node on the host would take it over and the first one's exit unlink it. Nothing here uses it
# (systemd and Docker signal the master); older gunicorns ignore the setting.
control_socket_disable = True

accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") == "1" else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
capture_output = True
# gunicorn's own lines (worker start/exit, timeouts) as JSON, like the kernel's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "mes_kernel.logging.gunicorn_formatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["error_console"]},
}

_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tempfile.gettempdir()) / f"mes-prometheus-{os.getpid()}")
# A metric without labels writes its file when its module is imported, before on_starting when the
# app is loaded early (`gunicorn --check-config`, preload): the directory must exist from here on.
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def on_starting(server):
    """Start every run with an empty metrics directory: files of dead processes from a previous
    run would otherwise be summed into this run's counters."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    server.log.info("workers=%s prometheus_multiproc_dir=%s", workers, path)


def child_exit(server, worker):
    """Let live-gauges of a dead worker go, so /metrics does not report it forever."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
