"""The validation layer in front of every route, the kernel's and the plugins': input no database can take.

Refused before any route code runs, the same on SQLite and PostgreSQL:

- a body of a media type the route does not read: 415 ``UNSUPPORTED_MEDIA_TYPE`` (JSON routes read
  ``application/json`` and ``application/*+json``; form routes ``application/x-www-form-urlencoded`` and
  ``multipart/form-data``). Media types are case-insensitive (RFC 9110 §8.3.1): the header is lowercased
  (its parameters, such as a multipart boundary, kept as sent) before the route sees it;
- a NUL character or bytes that are not UTF-8 in the path, the query, a JSON string (``\\u0000``
  escapes and lone UTF-16 surrogates) or a form field (multipart fields too, not file contents):
  422 ``VALIDATION_ERROR``; PostgreSQL text holds neither. (A JSON body whose raw bytes are not UTF-8
  is not JSON: 400 ``MALFORMED_JSON``.);
- ``NaN``, ``Infinity`` or ``-Infinity`` outside a string: Python's parser (the one FastAPI uses) takes
  them, but they are not JSON (RFC 8259 §6) and PostgreSQL's ``jsonb`` and the dashboard's parser
  refuse them: 400 ``MALFORMED_JSON``, the same as any other body that is not JSON. A number too large
  for a 64-bit float (``1e400``), which the parser turns into infinity: 422 ``VALIDATION_ERROR``;
- JSON nested deeper than ``MAX_JSON_DEPTH``: 422 ``VALIDATION_ERROR``, at any depth (the parsers
  and orjson's writer, which stops at 254 levels, are never reached);
- a query parameter that takes one value sent more than once (``?line=L1&line=L2``): 422
  ``VALIDATION_ERROR`` naming it (the framework would silently keep the last);
- an integer query or path parameter outside the signed 64-bit range of a ``BIGINT`` column:
  422 ``VALIDATION_ERROR``. Body integers beyond a column's range are mapped to 422 from the database's
  own refusal (``errors.py``), since only the column knows its range.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from itertools import accumulate
from urllib.parse import parse_qsl, unquote_to_bytes

from fastapi import params
from fastapi.routing import APIRoute
from python_multipart.multipart import MultipartParser
from starlette.exceptions import HTTPException
from starlette.routing import Match

from .errors import error_response

MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_HIGH_ALONE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_LOW_ALONE = re.compile(rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Numbers JSON has not: the constants Python's parser takes, and numbers no 64-bit float holds (a
# 3-digit exponent, or 309 digits before the point). Searched for in the body without its strings.
_NOT_A_NUMBER = re.compile(rb"-?(?:NaN|Infinity)")
_LARGE_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]*)?[eE]\+?[0-9]{3,}|-?[0-9]{309,}(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_EXPONENT_3 = re.compile(rb"[eE]\+?[0-9]{3}")
_NUMBER_HINT = re.compile(rb"NaN|Infinity|[eE]\+?[0-9]{3}")  # cheap: most small bodies have none


class InputRefused(Exception):
    def __init__(self, status: int, code: str, message: str, loc: list) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.loc = status, code, message, loc

    def response(self):
        errors = [{"loc": self.loc, "msg": self.message, "type": self.code.lower()}]
        return error_response(self.status, self.code, self.message, errors=errors)


def _refuse(message: str, *loc) -> InputRefused:
    return InputRefused(422, "VALIDATION_ERROR", message, list(loc))


def flat_routes(app):
    """Every endpoint of the app as routing sees it, included routers' routes with their full path.

    FastAPI 0.16x keeps included routers as one entry each in ``app.router.routes``; their
    ``effective_route_contexts()`` are the routes with the include prefix and the router's dependencies.
    """
    for route in getattr(getattr(app, "router", None), "routes", ()):
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


def match_route(scope) -> tuple[object | None, dict]:
    """The endpoint (a route or an effective route context) that fully matches ``scope``, and its child
    scope; (None, {}) when none does."""
    for route in flat_routes(scope.get("app")):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child
    return None, {}


class RouteInputs:
    """What one route reads: which body kind, which query/path parameters are integers, and which
    query parameters take one value."""

    def __init__(self, route) -> None:
        self.body: str | None = None
        self.int_query: set[str] = set()
        self.single_query: set[str] = set()
        self.int_path: set[str] = set()
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            return
        body, query, path = [], [], []
        pending = [route.dependant]
        while pending:  # the route's own parameters and those of every dependency, recursively
            dependant = pending.pop()
            body += dependant.body_params
            query += dependant.query_params
            path += dependant.path_params
            pending += dependant.dependencies
        if body:
            self.body = "form" if any(isinstance(f.field_info, params.Form) for f in body) else "json"
        self.int_query = {f.alias for f in query if _is_int(f.field_info.annotation)}
        self.single_query = {f.alias for f in query if not _is_sequence(f.field_info.annotation)}
        self.int_path = {f.alias for f in path if _is_int(f.field_info.annotation)}


def _is_int(annotation) -> bool:
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_int(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_int(a) for a in typing.get_args(annotation))
    return False


def _is_sequence(annotation) -> bool:
    """A parameter that takes several values (``list[str]``, ``tuple``, ``set``, optional or annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_sequence(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset)


def _check_int(value: str, *loc) -> None:
    try:
        number = int(value)
    except ValueError:
        return  # not a number at all: the route's own validation says so
    if not INT64_MIN <= number <= INT64_MAX:
        raise _refuse("integer out of range (signed 64 bits)", *loc)


def _check_text(raw: bytes, *loc) -> None:
    if b"\x00" in raw:
        raise _refuse("contains a NUL character", *loc)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("is not valid UTF-8", *loc) from None


def check_json(body: bytes) -> None:
    """Refuse a JSON body no database can store; parsing itself stays with the route.

    Raw bytes that are not UTF-8 (or a raw NUL) are not JSON at all (RFC 8259 §8.1): 400
    ``MALFORMED_JSON``, as the parser would say. Valid JSON holding unstorable text is 422."""
    try:
        _check_text(body, "body")
    except InputRefused as refused:
        raise InputRefused(
            400, "MALFORMED_JSON", f"request body is not valid JSON: {refused.message}", ["body"]
        ) from None
    if b"\\u" in body:
        if _NUL_ESCAPE.search(body):
            raise _refuse("contains a NUL character", "body")
        if _HIGH_ALONE.search(body) or _LOW_ALONE.search(body):
            raise _refuse("contains a lone UTF-16 surrogate", "body")
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        syntax = _JSON_STRING.sub(b"", body)  # what is left outside strings: JSON's own syntax and numbers
        deepest = max(accumulate(1 if c in b"[{" else -1 for c in syntax.translate(None, _NOT_BRACKETS)), default=0)
        if deepest > MAX_JSON_DEPTH:
            raise _refuse(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "body")
        _check_numbers(syntax)  # the strings are out already: a search of what is left
    elif _NUMBER_HINT.search(body) is not None or _long_mantissa(body):
        try:  # a hint only (a hex key "4e123…" matches): the routes' own parser says what is a number
            json.loads(body, parse_constant=_not_a_number, parse_float=_finite_float)
        except (ValueError, RecursionError):
            pass  # not JSON at all: the route's parser says so (MALFORMED_JSON)


def _long_mantissa(body: bytes) -> bool:
    """Whether 309 digits come before a point somewhere: a float no 64-bit float holds, maybe."""
    point = body.find(b".", 309)
    while point != -1:
        if body[point - 309 : point].isdigit():
            return True
        point = body.find(b".", point + 1)
    return False


def _not_a_number(token: str):
    raise InputRefused(
        400, "MALFORMED_JSON", f"request body is not valid JSON: {token} is not a JSON number (RFC 8259)", ["body"]
    )


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _refuse(f"number {text[:40]} is out of range (beyond a 64-bit float)", "body")
    return number


def _check_numbers(syntax: bytes) -> None:
    """Refuse ``NaN``/``Infinity`` and numbers no float holds in ``syntax``, a body without its strings
    (``"NaN-7"`` is a serial number, not a number)."""
    found = (b"NaN" in syntax or b"Infinity" in syntax) and _NOT_A_NUMBER.search(syntax)
    if found:
        _not_a_number(found.group().decode())
    if _EXPONENT_3.search(syntax) is None and not _long_mantissa(syntax):
        return
    for number in _LARGE_NUMBER.finditer(syntax):
        _finite_float(number.group().decode())


def check_urlencoded(body: bytes) -> None:
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        _check_text(unquote_to_bytes(name.replace(b"+", b" ")), "body")
        _check_text(unquote_to_bytes(value.replace(b"+", b" ")), "body", name.decode("latin-1"))


class RefusedWhileStreaming(HTTPException):
    """Raised from inside the body reader of a streamed upload; an HTTPException, so FastAPI's reader
    and the route let it through to the kernel's handler (as ``BodyLimitMiddleware`` does for 413)."""

    def __init__(self, refused: InputRefused) -> None:
        errors = [{"loc": refused.loc, "msg": refused.message, "type": refused.code.lower()}]
        super().__init__(refused.status, {"code": refused.code, "message": refused.message, "errors": errors})


class MultipartFieldScanner:
    """Checks the text fields of a multipart body as it streams past (file parts are data).

    Uploads stay streamed: nothing is buffered but the current field's value, at most
    ``MAX_FIELD_BYTES``; a bad field raises ``RefusedWhileStreaming`` from the route's body reader.
    """

    MAX_FIELD_BYTES = 1024 * 1024

    def __init__(self, boundary: bytes) -> None:
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
                "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except InputRefused as refused:
            raise RefusedWhileStreaming(refused) from None
        except Exception:
            pass  # a malformed multipart body is the route's parser's to refuse

    def _part_begin(self) -> None:
        self._disposition = b""
        self._value.clear()

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _is_file(self) -> bool:
        return b"filename" in self._disposition.lower()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file() and len(self._value) < self.MAX_FIELD_BYTES:
            self._value.extend(data[start:end])

    def _part_end(self) -> None:
        if not self._is_file():
            match = re.search(rb'name="([^"]*)"', self._disposition)
            _check_text(bytes(self._value), "body", match.group(1).decode("latin-1") if match else "?")


def _media_type(headers: list) -> tuple[int | None, bytes, bytes]:
    """(index of the Content-Type header, its media type lowercased, its parameters as sent)."""
    for i, (name, value) in enumerate(headers):
        if name == b"content-type":
            media, sep, rest = value.partition(b";")
            return i, media.strip().lower(), sep + rest
    return None, b"", b""


class InputGuardMiddleware:
    """Applies the checks of this module to every ``/api/`` request; see the module docstring."""

    def __init__(self, app) -> None:
        self.app = app
        self._routes: dict[int, RouteInputs] = {}
        self._matches: dict[tuple[str, str], tuple[RouteInputs | None, dict]] = {}

    def _inputs(self, scope) -> tuple[RouteInputs | None, dict]:
        key = (scope["method"], scope["path"])
        found = self._matches.get(key)
        if found is not None:
            return found
        found = None, {}
        route, child = match_route(scope)
        if route is not None:
            inputs = self._routes.get(id(route))
            if inputs is None:
                inputs = self._routes[id(route)] = RouteInputs(route)
            found = inputs, child.get("path_params", {})
            if len(self._matches) >= 4096:  # paths carry ids: keep the recent ones (hot paths repeat)
                self._matches.clear()
            self._matches[key] = found
        return found

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        try:
            body_kind, params_ok = self._check_url(scope)
            index, media, rest = _media_type(scope["headers"])
            if index is not None:
                headers = list(scope["headers"])
                headers[index] = (b"content-type", media + rest)
                scope["headers"] = headers
            if scope["method"] in BODY_METHODS and media == b"multipart/form-data":
                if body_kind == "json":
                    raise InputRefused(
                        415, "UNSUPPORTED_MEDIA_TYPE", "send application/json, not multipart/form-data", ["header"]
                    )
                found = re.search(rb'boundary="?([^";]+)"?', rest)
                if found:
                    receive = _scanning(receive, MultipartFieldScanner(found.group(1)))
            elif scope["method"] in BODY_METHODS and body_kind is None and media == b"application/octet-stream":
                pass  # a streamed upload (completion attachments): the route reads it chunk by chunk
            elif scope["method"] in BODY_METHODS and (media or body_kind):
                body, more = await _read_body(receive)
                self._check_body(body_kind, media, rest, body)
                receive = _replay(body, more, receive)
        except InputRefused as refused:
            return await refused.response()(scope, receive, send)
        await self.app(scope, receive, send)

    def _check_url(self, scope) -> tuple[str | None, bool]:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        _check_text(unquote_to_bytes(raw_path.split(b"?", 1)[0]), "path")
        try:
            query = parse_qsl(
                scope.get("query_string", b"").decode("latin-1"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
            )
        except UnicodeDecodeError:
            raise _refuse("is not valid UTF-8", "query") from None
        inputs, path_params = self._inputs(scope)
        seen: set[str] = set()
        for name, value in query:
            if "\x00" in name or "\x00" in value:
                raise _refuse("contains a NUL character", "query", name.replace("\x00", ""))
            if inputs is not None and name in inputs.int_query:
                _check_int(value, "query", name)
            if inputs is not None and name in inputs.single_query:
                if name in seen:  # else the last one sent would silently win over the others
                    raise _refuse("given more than once; this parameter takes one value", "query", name)
                seen.add(name)
        if inputs is not None:
            for name in inputs.int_path:
                if isinstance(path_params.get(name), str):
                    _check_int(path_params[name], "path", name)
        return (inputs.body if inputs else None), True

    @staticmethod
    def _check_body(body_kind: str | None, media: bytes, rest: bytes, body: bytes) -> None:
        text = media.decode("latin-1")
        is_json = text in JSON_TYPES or (text.startswith("application/") and text.endswith("+json"))
        if body_kind == "json" and not is_json and body:  # a body without a Content-Type included
            raise InputRefused(
                415, "UNSUPPORTED_MEDIA_TYPE", f"send application/json, not {text or 'no Content-Type'}", ["header"]
            )
        if body_kind == "form" and text not in FORM_TYPES and body:
            raise InputRefused(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"send multipart/form-data or application/x-www-form-urlencoded, not {text or 'no type'}",
                ["header"],
            )
        if is_json:
            check_json(body)
        elif text == "application/x-www-form-urlencoded":
            check_urlencoded(body)


async def _read_body(receive) -> tuple[bytes, list]:
    """The whole body (the body limit middleware in front bounds it), and any non-body message."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _scanning(receive, scanner: MultipartFieldScanner):
    async def scanning_receive():
        message = await receive()
        if message["type"] == "http.request":
            scanner.feed(message.get("body", b""))
        return message

    return scanning_receive


def _replay(body: bytes, pending: list, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
