"""The uvicorn worker gunicorn runs (deploy/gunicorn.conf.py): uvicorn's, without the ``server`` header."""

from __future__ import annotations

from uvicorn_worker import UvicornWorker


class MesUvicornWorker(UvicornWorker):
    """``uvicorn_worker.UvicornWorker`` that does not announce ``server: uvicorn`` (it tells an attacker
    which server and, through its changelog, which known bugs to try). The kernel's access log replaces
    uvicorn's, so uvicorn's own access log stays off."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "server_header": False, "access_log": False}
