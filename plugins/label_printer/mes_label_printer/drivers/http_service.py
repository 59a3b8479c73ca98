"""A print service over HTTP (the spec's ``POST {base}/{printer_id}/print``), through httpx."""

from __future__ import annotations

import httpx

from ..status import PrinterStatus
from .base import LabelPrinterDriver, PrinterConnectionError, PrinterError, PrinterNotReady, PrinterTimeout

_STATUS_FIELDS = set(PrinterStatus.__dataclass_fields__)


class HttpServiceDriver(LabelPrinterDriver):
    """Printer ``printer_id`` behind a print service at ``base_url``.

    Print: ``POST {base_url}/{printer_id}/print`` with ``{"zpl": "...", "format": "zpl"}``;
    status: ``GET {base_url}/{printer_id}/status`` answering the fields of
    :class:`~mes_label_printer.status.PrinterStatus` as JSON. HTTP 409 means not ready.
    """

    name = "http_service"
    version = "1.0"

    def __init__(self, base_url: str, printer_id: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.printer_id = printer_id
        self.timeout = float(timeout)
        self.token = token
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=headers)
        return self._client

    def _url(self, action: str) -> str:
        return f"{self.base_url}/{self.printer_id}/{action}"

    async def _request(self, method: str, action: str, **kw) -> httpx.Response:
        sent = method == "POST"
        try:
            response = await self._http().request(method, self._url(action), **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise PrinterConnectionError(f"print service unreachable: {exc}", label_sent=False) from exc
        except httpx.TimeoutException as exc:
            # A POST that timed out may have printed: the service could have taken it.
            raise PrinterTimeout(f"print service did not answer within {self.timeout:g} s", label_sent=sent) from exc
        except httpx.HTTPError as exc:
            raise PrinterConnectionError(f"print service failed: {exc}", label_sent=sent) from exc
        return response

    async def send(self, zpl: bytes) -> None:
        response = await self._request("POST", "print", json={"zpl": zpl.decode("utf-8"), "format": "zpl"})
        if response.status_code == 409:
            raise PrinterNotReady(_status_from(response))
        if response.is_error:
            # A 5xx after the service took the body may or may not have printed.
            raise PrinterError(
                f"print service answered {response.status_code}: {response.text[:200]}",
                label_sent=response.status_code >= 500,
            )

    async def status(self) -> PrinterStatus:
        response = await self._request("GET", "status")
        if response.is_error:
            raise PrinterError(f"print service answered {response.status_code} for status")
        return _status_from(response)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _status_from(response: httpx.Response) -> PrinterStatus:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if "problems" in body and not (set(body) & {"paper_out", "head_open", "ribbon_out", "paused"}):
        # a 409 with only a list of problems: map the words back to flags
        words = " ".join(body.get("problems", []))
        return PrinterStatus(
            paper_out="paper" in words,
            ribbon_out="ribbon" in words,
            thermal_transfer="ribbon" in words,  # the service named the ribbon, so one is in use
            head_open="head open" in words,
            paused="paused" in words,
        )
    return PrinterStatus(**{k: v for k, v in body.items() if k in _STATUS_FIELDS})
