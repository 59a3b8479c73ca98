"""A print service over HTTP (the spec's ``POST {base}/{printer_id}/print``), fronting simulated printers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .core import PrinterCore, ResetConnection


class HttpPrintService:
    """An HTTP print service on ``127.0.0.1:port`` with one :class:`PrinterCore` per printer id.

    ``POST /{printer_id}/print`` with ``{"zpl": "..."}`` prints; ``GET /{printer_id}/status``
    answers the printer's state as JSON. ``error_status`` (e.g. 500) makes every request fail.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.printers: dict[str, PrinterCore] = {}
        self.error_status: int | None = None
        self.requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                return

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> tuple[PrinterCore, str] | None:
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) != 2:
                    self._answer(404, {"error": "unknown path"})
                    return None
                return service.printer(parts[0]), parts[1]

            def do_GET(self) -> None:
                service.requests += 1
                route = self._route()
                if route is None:
                    return
                core, action = route
                if service.error_status:
                    return self._answer(service.error_status, {"error": "injected failure"})
                if action != "status":
                    return self._answer(404, {"error": "unknown path"})
                reply = core.answer_status()
                if reply is None:
                    time.sleep(10)  # a silent printer behind the service: the client must time out
                    return self._answer(504, {"error": "printer did not answer"})
                time.sleep(reply.delay)
                self._answer(200, core.status().to_dict())

            def do_POST(self) -> None:
                service.requests += 1
                route = self._route()
                if route is None:
                    return
                core, action = route
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if service.error_status:
                    return self._answer(service.error_status, {"error": "injected failure"})
                if action != "print":
                    return self._answer(404, {"error": "unknown path"})
                try:
                    zpl = json.loads(body)["zpl"].encode("utf-8")
                except (ValueError, KeyError, TypeError, AttributeError):
                    return self._answer(400, {"error": "body must be JSON with a 'zpl' string"})
                status = core.status()
                if not status.ready:
                    return self._answer(409, {"error": "printer not ready", "problems": status.problems})
                before = core.label_count
                try:
                    core.new_stream().feed(zpl)
                except ResetConnection:
                    return self._answer(502, {"error": "printer reset the connection"})
                self._answer(200, {"printed": core.label_count - before, "total": core.label_count})

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05), name="print-service", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printer(self, printer_id: str) -> PrinterCore:
        """The simulated printer behind ``printer_id`` (created on first use)."""
        return self.printers.setdefault(printer_id, PrinterCore())

    def start(self) -> HttpPrintService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpPrintService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
