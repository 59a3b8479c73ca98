"""Request and response bodies of the kernel API (pydantic models)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import Unprocessable
from .permissions import ROLES
from .text import check_comment, check_identifier, check_name

T = TypeVar("T")

INT32_MAX = 2**31 - 1  # PostgreSQL INTEGER; SQLite would take more, PostgreSQL refuses it

Code = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/:]*$")


def _finite(value: Any, path: str = "") -> Any:
    """Refuse NaN and ±Infinity anywhere in free-form JSON (Python's parser accepts them; JSON and
    PostgreSQL do not), and NUL characters in strings (PostgreSQL text cannot hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'} is not a finite number")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{path or 'value'} contains a NUL character")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(k, f"{path}.<key>")
            _finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{path}[{i}]")
    return value


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def _utc_representable(value: datetime | None) -> datetime | None:
    """Refuse an aware time that has no UTC time (``0001-01-01T00:00+09:00``, ``9999-12-31T23:59-14:00``):
    every stored and compared time is UTC, and converting it would overflow. The value is kept as
    given (an idempotency key compares the body as sent)."""
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the years 1-9999 once converted to UTC") from None
    return value


FiniteJSON = Annotated[dict[str, Any], AfterValidator(_finite)]
UtcMoment = Annotated[AwareDatetime, AfterValidator(_utc_representable)]
"""An ISO-8601 time with offset that converts to UTC: for every time a client sends."""
Text = Annotated[str, AfterValidator(_no_nul)]
"""Any text without NUL (passwords, tokens, free-form keys): taken as sent."""
Name = Annotated[str, AfterValidator(check_name)]
"""A display name or title a person types (shift, line, station, routing step, user, template title):
surrounding whitespace is stripped; only whitespace (``"   "``) or a control/format character
(tab, newline, U+200B, U+FEFF, bidi controls…) inside is refused. ``""`` passes: give the field
``min_length=1`` where a name is required."""
Comment = Annotated[str, AfterValidator(check_comment)]
"""A reason, note or description: a ``Name`` that may hold line breaks and tabs."""
Identifier = Annotated[str, AfterValidator(check_identifier)]
"""A LOT number, serial number, worker id, device/station/product code as a scanner or machine sends
it: taken exactly, so surrounding whitespace or any invisible character is refused, never trimmed."""


@lru_cache(maxsize=64)
def _adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


def checked(kind: Any, value: Any, *, field: str, code: str = "VALIDATION_ERROR") -> Any:
    """``value`` validated as ``kind`` (``Name``, ``Comment``, ``Identifier``, or one of them in an
    ``Annotated`` with a ``Field``) where no request model reads it: a form field, a CLI option.

    :returns: the value as the type keeps it (a ``Name`` stripped).
    :raises Unprocessable: 422 ``code`` with ``field`` and ``errors`` as a request model would give.
    """
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        errors = [{"loc": [field, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        message = f"{field} {errors[0]['msg'].removeprefix('Value error, ')}"
        raise Unprocessable(message, code=code, field=field, errors=errors) from None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ORM(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- auth
class LoginIn(BaseModel):
    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=1, max_length=256)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class RefreshIn(BaseModel):
    refresh_token: Text = Field(min_length=10, max_length=200)


# ---------------------------------------------------------------- users
Role = Literal[ROLES]  # the kernel's roles (mes_kernel.permissions), one list


#: The dashboard's languages; a user's choice is stored with the user (``users.language``).
Language = Literal["en", "ko"]


class UserCreate(BaseModel):
    username: Text = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-@]+$")
    password: Text = Field(min_length=8, max_length=256)
    role: Role
    full_name: Name = Field("", max_length=200)
    language: Language | None = None


class UserUpdate(BaseModel):
    role: Role | None = None
    full_name: Name | None = Field(None, max_length=200)
    is_active: bool | None = None
    password: Text | None = Field(None, min_length=8, max_length=256)
    language: Language | None = None


class MeUpdate(BaseModel):
    """What users may change about themselves (``PATCH /auth/me``)."""

    model_config = ConfigDict(extra="forbid")
    language: Language


class UserOut(ORM):
    id: int
    username: str
    full_name: str
    role: str
    is_active: bool
    created_at: datetime
    locked_until: datetime | None = None  # set while too many wrong passwords lock the account
    language: str | None = None  # "en" | "ko" as the user chose; None: not chosen (the browser's)


# ---------------------------------------------------------------- lots
LotStatus = Literal["created", "in_progress", "on_hold", "closed", "scrapped"]


class LotCreate(BaseModel):
    lot_number: str = Code
    product: str = Code
    quantity: int = Field(0, ge=0, le=10_000_000)
    line: Identifier | None = Field(None, min_length=1, max_length=64)
    note: Comment = Field("", max_length=2000)


class LotUpdate(BaseModel):
    status: LotStatus | None = None
    quantity: int | None = Field(None, ge=0, le=10_000_000)
    note: Comment | None = Field(None, max_length=2000)
    reason: Comment | None = Field(
        None, max_length=500, description="why the status changes (a hold, a scrap); shown in the LOT history"
    )


class LotOut(ORM):
    id: int
    lot_number: str
    product: str
    quantity: int
    status: str
    note: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    unit_count: int = Field(description="serial numbers registered in the LOT (every answer carries it)")


class UnitsCreate(BaseModel):
    serial_numbers: list[str] = Field(
        min_length=1, max_length=10_000, description="each 1-64 characters, an Identifier (checked all at once)"
    )


class UnitOut(ORM):
    id: int
    serial_number: str
    lot_id: int
    status: str
    created_at: datetime


# ---------------------------------------------------------------- processes and records
IdealCycleSeconds = Field(
    None, gt=0, le=86_400, allow_inf_nan=False,
    description="seconds one item ideally takes at this step (OEE performance, ISO 22400 PTU); null: not set",
)


class ProcessIn(BaseModel):
    id: str = Code
    name: Name = Field("", max_length=200)
    sequence: int = Field(0, ge=0, le=INT32_MAX, description="order of the step on the route (an INTEGER column)")
    ideal_cycle_seconds: float | None = IdealCycleSeconds


class ProcessUpdate(BaseModel):
    """The fields of a routing step to change; a field left out keeps its value (``null`` clears
    the ideal cycle time)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, max_length=200)
    sequence: int | None = Field(None, ge=0, le=INT32_MAX)
    ideal_cycle_seconds: float | None = IdealCycleSeconds


class ProcessOut(ORM):
    id: str
    name: str
    sequence: int
    ideal_cycle_seconds: float | None = None


class DefectCodeIn(BaseModel):
    code: str = Code
    name: Name = Field("", max_length=200)


class DefectCodesIn(BaseModel):
    """A process's whole defect list, in the order the station shows it (replaces the previous list)."""

    defect_codes: list[DefectCodeIn] = Field(max_length=200)


class DefectCodeOut(BaseModel):
    code: str
    name: str


class DefectCodesOut(BaseModel):
    process_id: str
    defect_codes: list[DefectCodeOut]


class RecordIn(BaseModel):
    idempotency_key: Text = Field(min_length=8, max_length=128)
    lot_number: str = Code
    process_id: str = Code
    worker_id: Identifier | None = Field(None, min_length=1, max_length=64)
    serial_number: Identifier | None = Field(None, max_length=64)
    station: Identifier | None = Field(None, max_length=64, description="station code; stations send their own")
    result: Literal["pass", "fail"]
    defect_code: Identifier | None = Field(None, max_length=64)
    data: FiniteJSON = Field(default_factory=dict)
    recorded_at: UtcMoment | None = None
    station_seq: int | None = Field(
        None, ge=0, lt=2**63,
        description="the station outbox's sequence number: orders events of one station time in a history",
    )


class RecordOut(ORM):
    id: int
    idempotency_key: str
    lot_number: str
    process_id: str
    worker_id: str
    station_id: int | None
    serial_number: str | None
    result: str
    defect_code: str | None
    data: dict[str, Any]
    recorded_at: datetime | None
    created_by: str
    created_at: datetime


class BatchIn(BaseModel):
    records: list[Any] = Field(min_length=1, max_length=1000, description="each item a record object")


class BatchItemResult(BaseModel):
    idempotency_key: str | None
    status: Literal["created", "duplicate", "error"]
    record: RecordOut | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    created: int
    duplicates: int
    errors: int
    results: list[BatchItemResult]


class HistoryEvent(BaseModel):
    at: datetime
    type: Literal["process_record", "device_action"]
    lot_number: str | None
    serial_number: str | None
    data: dict[str, Any]
