"""Tables of the kernel: people and machines, lines and devices, LOTs and their history, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..permissions import ROLES  # the users table's check (a new role needs a migration too)
from ..security import username_key
from .base import Base, JSONType, UTCDateTime, utcnow
from .lot_counts import COUNTS as LOT_COUNTS
from .lot_counts import COVERED as LOT_COVERED
from .lot_counts import DAY_KEYS as LOT_DAY_KEYS
from .lot_counts import KEY as LOT_KEY
from .lot_counts import install_on_create

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

LOT_STATUSES = ("created", "in_progress", "on_hold", "closed", "scrapped")


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class User(TimestampMixin, Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    password_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # security.username_key(username): the unique, case- and width-insensitive form logins match on.
    username_key: Mapped[str] = mapped_column(
        String(64),
        unique=True,
        nullable=False,
        default=lambda context: username_key(context.get_current_parameters()["username"]),
    )
    # Bumped by a role change, a password change and deactivation: older access tokens stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # Wrong passwords since the last good login or lock; at the threshold the account locks until locked_until.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The dashboard language the user chose (schemas.Language: "en" | "ko"); None: not chosen, the browser's.
    language: Mapped[str | None] = mapped_column(String(8))
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="role"),)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    family_id: Mapped[str] = mapped_column(String(36), index=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Line(TimestampMixin, Base):
    """A production line and its configuration: enabled plugins, breaker overrides."""

    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    # Bumped by every change of the line's configuration; workers, nodes and stations follow it.
    config_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)


class PluginState(Base):
    """An administrator's run-time switch for one plugin: enabled or disabled on every node."""

    __tablename__ = "plugin_states"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    reason: Mapped[str] = mapped_column(Text, default="", nullable=False)
    changed_by: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Station(TimestampMixin, Base):
    """A worker PC: a machine identity with its own tokens and a heartbeat."""

    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    # moves to another line since the last heartbeat, while no silence alert was open (0028):
    # [{"at": ISO UTC, "from_line_id": int | None}]; the silence's alerts are split at each
    line_moves: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'"), nullable=False
    )


class StationToken(Base):
    __tablename__ = "station_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Device(TimestampMixin, Base):
    """A device on a line or station: which plugin kind, which driver name, its settings."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    driver: Mapped[str] = mapped_column(String(64), nullable=False)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)


class Process(TimestampMixin, Base):
    """A routing step (``process_id`` such as ``ASSY-10``), in sequence order."""

    __tablename__ = "processes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The designed time for one item at this step (ISO 22400-2 "planned unit process time"): the
    # performance factor of OEE counts it against run time. None leaves the step out of performance.
    ideal_cycle_seconds: Mapped[float | None] = mapped_column(Float)


class ProcessDefectCode(Base):
    """A defect code a worker may choose when a unit fails at one process step (the process's
    defect list, edited by production managers; stations cache it for offline use)."""

    __tablename__ = "process_defect_codes"
    process_id: Mapped[str] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Lot(TimestampMixin, Base):
    __tablename__ = "lots"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_number: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    product: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="created", index=True, nullable=False)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    note: Mapped[str] = mapped_column(Text, default="", nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        CheckConstraint(f"status IN {LOT_STATUSES}", name="status"),
        Index("ix_lots_created_at", "created_at"),
        # each line's LOT in progress, newest first (the production view), migration 0018
        Index(
            "ix_lots_in_progress_by_line",
            "line_id",
            "updated_at",
            "id",
            postgresql_where=text("status = 'in_progress'"),
            sqlite_where=text("status = 'in_progress'"),
        ),
    )


class Unit(TimestampMixin, Base):
    """One serialized unit of a LOT."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="RESTRICT"), index=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="in_progress", nullable=False)


FAILED_ITEM = text("coalesce(serial_number, lot_number)")  # a record's item, as process_items names it


class ProcessRecord(Base):
    """A process result for a LOT (optionally one unit), unique by idempotency key.

    On PostgreSQL the table is partitioned by month of ``created_at`` (server receipt; migration
    0009, ``mes db partitions``) and its primary key is ``(id, created_at)``; a key's uniqueness
    across partitions is kept by :class:`ProcessRecordKey`.
    """

    __tablename__ = "process_records"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="RESTRICT"), nullable=False)
    lot_number: Mapped[str] = mapped_column(String(64), nullable=False)
    process_id: Mapped[str] = mapped_column(ForeignKey("processes.id", ondelete="RESTRICT"), nullable=False)
    worker_id: Mapped[str] = mapped_column(String(64), nullable=False)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    # The line the work counts for, fixed when recorded (the station's line, else the LOT's), so a
    # station moved to another line later does not rewrite history or its rollups.
    line_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    serial_number: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(8), nullable=False)
    defect_code: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it happened: the station's ``recorded_at``, else server receipt. Histories sort by it and
    # rollups bucket by its hour.
    event_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (
        CheckConstraint("result IN ('pass', 'fail')", name="result"),
        UniqueConstraint("idempotency_key", "created_at"),
        Index("ix_process_records_lot_number", "lot_number"),
        Index("ix_process_records_process_id", "process_id"),
        Index("ix_process_records_worker_id", "worker_id"),
        Index("ix_process_records_lot_process_created", "lot_number", "process_id", "created_at"),
        Index("ix_process_records_created_at", "created_at"),
        Index("ix_process_records_lot_id_event_at_id", "lot_id", "event_at", "id"),
        Index("ix_process_records_unit_id_event_at_id", "unit_id", "event_at", "id"),
        # the failed records of a defect code in a range (the drill-down behind a Pareto bar), 0022;
        # with what the drill-down counts of them, read from the index alone (0026)
        Index(
            "ix_process_records_failed_defect",
            "defect_code",
            "event_at",
            postgresql_include=["lot_number", "serial_number", "line_id", "created_at"],
            postgresql_where=text("result = 'fail'"),
            sqlite_where=text("result = 'fail'"),
        ),
        # the same records by item (a unit's serial number, else its LOT's number), 0027: a page of
        # a Pareto bar's units is read in this order, each unit's failures together, whatever the range
        Index(
            "ix_process_records_failed_defect_item",
            "defect_code",
            FAILED_ITEM,
            "event_at",
            postgresql_include=["lot_number", "serial_number", "line_id", "created_at"],
            postgresql_where=text("result = 'fail'"),
            sqlite_where=text("result = 'fail'"),
        ),
        # and by LOT, then item (0029): the bar's LOTs, each with its failures and distinct units,
        # are grouped as the entries stream past, not in two hash tables. All three carry the
        # receipt (created_at, 0031): a read from a station time on leaves older months' partitions
        # out (partitions.received_from) and checks the receipt in the index
        Index(
            "ix_process_records_failed_defect_lot",
            "defect_code",
            "lot_number",
            FAILED_ITEM,
            "event_at",
            postgresql_include=["serial_number", "line_id", "created_at"],
            postgresql_where=text("result = 'fail'"),
            sqlite_where=text("result = 'fail'"),
        ),
    )


class ProcessRecordKey(Base):
    """One row per idempotency key: the global uniqueness a partitioned table cannot give.

    Written first in the recording transaction; ``created_at`` says which partition (month) holds
    the record, so a retry a month later finds the original instead of landing a copy. A key
    outlives its record's archive until no retry can arrive any more
    (:func:`mes_kernel.db.record_keys.prune_keys`).
    """

    __tablename__ = "process_record_keys"
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    # by receipt: the keys of archived months pruned once no retry can arrive (migration 0024)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


# A bar's column first, then the page order (hour, item, step); the step is fixed for a step's bar.
ITEM_PAGES = {
    "process": ("process_id", "hour_start", "item"),
    "station": ("station_id", "hour_start", "item", "process_id"),
    "product": ("product", "hour_start", "item", "process_id"),
}
ITEM_LOSSES = text("NOT first_passed OR NOT last_passed")


class ProcessItem(Base):
    """An item (a unit by serial number, else the LOT) at one process step: where its first
    attempt counts, and whether its latest attempt passed. Keeps first-pass and final yield exact
    in the hourly rollups; first and latest are by record id (the order the server stored them)."""

    __tablename__ = "process_items"
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_record_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_record_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    line_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    station_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    product: Mapped[str] = mapped_column(String(64), nullable=False)
    first_passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    last_passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Its first passing record (lowest id among its passes; None: never passed): where it counts as
    # output (``output`` of the rollups, at the last routing step).
    pass_record_id: Mapped[int | None] = mapped_column(BigInteger)
    pass_hour_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pass_line_id: Mapped[int | None] = mapped_column(BigInteger)
    pass_station_id: Mapped[int | None] = mapped_column(BigInteger)
    # The item's LOT (the LOT of its records; a unit's LOT is its records', UNIT_NOT_IN_LOT): the
    # drill-down groups a bar's items by it without a join to ``units`` (0025). None only for a row
    # older than 0025 whose item names no unit or LOT and whose records are all archived.
    lot_id: Mapped[int | None] = mapped_column(BigInteger)
    # The drill-down behind a yield bar pages the bar's items in (hour, item, step) order, each
    # kind of bar from an index of its own (0026): a page is its 50 entries whatever the range.
    # The losses (failed a first try or the latest) have partial indexes, so a bar with few or no
    # losses finds them without reading its items.
    __table_args__ = tuple(
        Index(f"ix_process_items_{kind}_{part}", *columns, **options)
        for kind, columns in ITEM_PAGES.items()
        for part, options in (("page", {}), ("losses", {"postgresql_where": ITEM_LOSSES, "sqlite_where": ITEM_LOSSES}))
    )


UNFOLDED = text("shard <> 0")  # rows recording transactions wrote and the fold has not summed yet


class KpiHourly(Base):
    """Hourly rollup of process records per line × process × station × product (0 = none).

    ``total``/``passed`` count records whose ``event_at`` falls in the hour; ``first_total``,
    ``first_passed`` and ``final_passed`` count items whose first attempt falls in it (first-pass
    and final yield); ``output`` counts items whose first passing record falls in it (output at the
    last step); ``cycle_seconds_sum``/``cycle_count`` sum ``data.cycle_seconds`` where given.
    A bucket is split over a few ``shard`` rows so concurrent recording transactions rarely wait
    for each other's row lock; readers sum over shards.
    """

    __tablename__ = "kpi_hourly"
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    final_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    output: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)
    cycle_seconds_sum: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    cycle_count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (
        Index("ix_kpi_hourly_line_id_hour_start", "line_id", "hour_start"),
        Index("ix_kpi_hourly_unfolded", "hour_start", postgresql_where=UNFOLDED, sqlite_where=UNFOLDED),
    )


class KpiHourlyDefect(Base):
    """Hourly count of failed records per defect code, on the same key as :class:`KpiHourly`."""

    __tablename__ = "kpi_hourly_defects"
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    defect_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (
        Index("ix_kpi_hourly_defects_unfolded", "hour_start", postgresql_where=UNFOLDED, sqlite_where=UNFOLDED),
    )


class KpiHourlyLot(Base):
    """Per LOT and hour, the items first tried at a step (the yield counts of :class:`KpiHourly`
    with the item's LOT added to the key): what the drill-down behind a yield bar lists, a few
    rows per LOT and hour however many units the LOT holds.

    Kept by triggers on ``process_items`` (:mod:`mes_kernel.db.lot_counts`), so every path that
    writes an item — recording, a moved first attempt, a retest, ``mes kpi rebuild`` — counts it
    in the same statement. ``first_total`` items first tried in the hour, ``first_passed`` that
    passed that try, ``final_passed`` whose latest attempt passed, ``recovered`` that failed the
    first try and passed the latest. ``lot_id`` 0: an item with no LOT known (rows older than
    migration 0025). On PostgreSQL every statement adds its counts in a ``shard`` of its own (no
    writer waits for another's row lock) and :func:`~mes_kernel.services.rollups.fold_shards`
    sums them into shard 0; readers sum over shards.
    """

    __tablename__ = "kpi_hourly_lots"
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    # integers, not bigints: a LOT's items in an hour fit, and PostgreSQL sums integers into a
    # bigint but bigints into numeric — three times slower over a month of a step's LOTs
    first_total: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    first_passed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    final_passed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    recovered: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # every index carries what the drill-down sums (PostgreSQL reads it alone): a step's LOTs by
    # the primary key (step, hour, …), a station's and a product's by their own
    __table_args__ = (
        PrimaryKeyConstraint(*LOT_KEY, "shard", postgresql_include=list(LOT_COUNTS)),
        Index("ix_kpi_hourly_lots_station_hour", "station_id", "hour_start", postgresql_include=LOT_COVERED),
        Index("ix_kpi_hourly_lots_product_hour", "product", "hour_start", postgresql_include=LOT_COVERED),
        Index("ix_kpi_hourly_lots_unfolded", "hour_start", postgresql_where=UNFOLDED, sqlite_where=UNFOLDED),
    )


class KpiDaily(Base):
    """Daily (UTC day) rollup on :class:`KpiHourly`'s key, for long ranges (PostgreSQL): the sum of
    the day's folded hourly rows (shard 0), kept by the fold and the rebuild."""

    __tablename__ = "kpi_daily"
    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    final_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    output: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)
    cycle_seconds_sum: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    cycle_count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (Index("ix_kpi_daily_line_id_day_start", "line_id", "day_start"),)


class _DailyLotCounts:
    """The counts of a per-LOT daily rollup: :class:`KpiHourlyLot`'s, summed over a UTC day, with
    its day, line and LOT (the first key column, a step or a product, is the table's own)."""

    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # integers, as kpi_hourly_lots' (a LOT's items in a day fit; sums of integers are bigints)
    first_total: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    first_passed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    final_passed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    recovered: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class KpiDailyLot(_DailyLotCounts, Base):
    """Per step, LOT and UTC day, the counts of :class:`KpiHourlyLot` with its stations summed
    (PostgreSQL): the sum of the day's folded hourly rows (shard 0), kept by the fold and the
    rebuild like :class:`KpiDaily`. A step's month is about a row per LOT here, where the hourly
    table holds one per LOT, hour and station: the drill-down behind a step's bar reads its whole
    days from it. (``product`` is not in the key: a LOT has one.)"""

    __tablename__ = "kpi_daily_lots"
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    __table_args__ = (
        PrimaryKeyConstraint(*LOT_DAY_KEYS["kpi_daily_lots"], postgresql_include=list(LOT_COUNTS)),
    )


class KpiDailyProductLot(_DailyLotCounts, Base):
    """Per product, LOT and UTC day, the counts of :class:`KpiHourlyLot` with its steps and
    stations summed (PostgreSQL), kept like :class:`KpiDailyLot`: what the drill-down behind a
    product's bar reads for whole days (a plant making one product has every LOT, step and
    station in that bar)."""

    __tablename__ = "kpi_daily_product_lots"
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    __table_args__ = (
        PrimaryKeyConstraint(*LOT_DAY_KEYS["kpi_daily_product_lots"], postgresql_include=list(LOT_COUNTS)),
    )


class KpiDailyStationLot(_DailyLotCounts, Base):
    """Per station, LOT and UTC day, the counts of :class:`KpiHourlyLot` with its steps summed
    (PostgreSQL, migration 0030), kept like :class:`KpiDailyLot`: what the drill-down behind a
    station's bar reads for whole days. A station works several steps of a LOT over several hours:
    at 10 M records a station's 30 days are 25,600 hourly rows for 4,950 LOTs, and a row per LOT
    and day here. (``station_id`` 0: records made without a station.)"""

    __tablename__ = "kpi_daily_station_lots"
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    __table_args__ = (
        PrimaryKeyConstraint(*LOT_DAY_KEYS["kpi_daily_station_lots"], postgresql_include=list(LOT_COUNTS)),
    )


class KpiLineDailyDefect(Base):
    """Daily count of failed records per line and defect code (stations, steps and products
    summed), what the Pareto and the defect panel read over whole days (PostgreSQL)."""

    __tablename__ = "kpi_line_daily_defects"
    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    defect_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class KpiLineHourly(Base):
    """Hourly rollup per line × process (stations and products summed), what OEE, output and
    throughput read (PostgreSQL): the sum of the hour's folded :class:`KpiHourly` rows."""

    __tablename__ = "kpi_line_hourly"
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_total: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    first_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    final_passed: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    output: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)
    cycle_seconds_sum: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    cycle_count: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (Index("ix_kpi_line_hourly_line_id_hour_start", "line_id", "hour_start"),)


class ShiftCalendarVersion(Base):
    """One version of a line's shifts, in force from ``valid_from`` (UTC) until the line's next
    version: ``[{"name", "start": "06:00", "end": "14:00", "days": [0..6], "planned_output"}]``,
    times on the plant's wall clock (``MES_DASHBOARD_TIMEZONE``), days Monday = 0; an end at or
    before the start crosses midnight. No planned time before a line's first version; an empty
    ``shifts`` plans nothing from ``valid_from`` on. ``updated_by``/``updated_at``: who wrote the
    version and when (a version written again at the same ``valid_from`` is replaced)."""

    __tablename__ = "shift_calendar_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), nullable=False)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (UniqueConstraint("line_id", "valid_from"),)


MACHINE_STATES = ("running", "idle", "down", "setup")


class MachineState(Base):
    """An interval in one machine state, written by connector plugins (the contract: one row per
    interval, ``ended_at`` null while it lasts). Every state but ``running`` is downtime for OEE."""

    __tablename__ = "machine_states"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), nullable=False)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    device: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, default="", nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        CheckConstraint(f"state IN {MACHINE_STATES}", name="state"),
        Index("ix_machine_states_line_id_started_at", "line_id", "started_at"),
        Index("ix_machine_states_device_started_at", "device", "started_at"),
    )


class MachineCount(Base):
    """Parts a machine counted in one hour (by its source timestamps), from its good/bad counters:
    written by connector plugins through the kernel's machine-data sink, read by OEE."""

    __tablename__ = "machine_counts"
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), nullable=False)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    good: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    bad: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (Index("ix_machine_counts_line_id_hour_start", "line_id", "hour_start"),)


class MachineCounter(Base):
    """The last reading of a machine's absolute counter, so increments survive a kernel restart."""

    __tablename__ = "machine_counters"
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[str] = mapped_column(String(16), primary_key=True)
    reading: Mapped[int] = mapped_column(BigInteger, nullable=False)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class MachineValue(Base):
    """A process value a machine reported (``source_at``: the machine's timestamp), with the unit
    that was on the machine then (``serial_number``, ``unit_id`` when the MES knows the unit)."""

    __tablename__ = "machine_values"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), nullable=False)
    device: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(256))
    unit: Mapped[str] = mapped_column(String(16), default="", nullable=False)
    serial_number: Mapped[str | None] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    source_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (
        Index("ix_machine_values_unit_id_source_at", "unit_id", "source_at"),
        Index("ix_machine_values_device_source_at", "device", "source_at"),
    )


class DeviceAction(Base):
    """A print, flash or scan against a LOT/unit: who, where, which driver and version, outcome."""

    __tablename__ = "device_actions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    plugin: Mapped[str] = mapped_column(String(64), nullable=False)
    device: Mapped[str] = mapped_column(String(64), nullable=False)
    driver: Mapped[str] = mapped_column(String(64), nullable=False)
    driver_version: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id", ondelete="RESTRICT"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    lot_number: Mapped[str | None] = mapped_column(String(64))
    serial_number: Mapped[str | None] = mapped_column(String(64), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (Index("ix_device_actions_lot_id_created_at_id", "lot_id", "created_at", "id"),)


class TraceEvent(Base):
    """One entry of a LOT's (and, with ``unit_id``, a unit's) history, written in the transaction of
    what it traces: a process record, a device action, a station scan, a LOT status change, a unit
    registration.

    Histories read this table alone, newest first by ``(recorded_at, station_seq, id)``: when it
    happened at the station (server receipt when the station sent no time), then the station's
    outbox sequence number (so a replayed batch keeps its order), then arrival. ``source_id`` is the
    id of the traced row in its own table (``process_records``, ``device_actions``,
    ``station_events``; none for status changes and registrations); ``payload`` is what the history
    shows of it, fixed when written.

    On PostgreSQL the table is partitioned by month of ``received_at`` (server receipt; a record's
    event carries the record's ``created_at``, so both share a month and are archived together;
    migration 0015, ``mes db partitions``) and its primary key is ``(id, received_at)``.
    """

    __tablename__ = "trace_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id", ondelete="RESTRICT"), nullable=False)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    station_seq: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    source_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    __table_args__ = (
        CheckConstraint(
            "kind IN ('process_record', 'device_action', 'scan', 'status_change', 'registration')", name="kind"
        ),
        Index("ix_trace_events_lot_history", "lot_id", "recorded_at", "station_seq", "id"),
        Index("ix_trace_events_unit_history", "unit_id", "recorded_at", "station_seq", "id"),
    )


class TraceTotal(Base):
    """How many trace events a LOT (``scope='lot'``) or a unit (``scope='unit'``) has: kept in the
    transaction that adds them, so a history page reads its true total without counting."""

    __tablename__ = "trace_totals"
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    __table_args__ = (CheckConstraint("scope IN ('lot', 'unit')", name="scope"),)


class ArchivedMonth(Base):
    """A month of process records and trace events taken offline by ``mes db partitions archive``
    (PostgreSQL), and how far its run got: ``detached`` (its rows are being taken out of the trace
    totals and idempotency keys, batch by batch: ``trace_after`` / ``keys_after`` are the last ids
    done), ``uncounted`` (dumped next, then dropped), ``archived``. ``last_event_at`` is the latest
    station time among its records, so ``mes kpi rebuild`` never rewrites an hour they count in.
    A restored month's row is deleted."""

    __tablename__ = "archived_months"
    month_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    trace_after: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    keys_after: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dump: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (CheckConstraint("state IN ('detached', 'uncounted', 'archived')", name="state"),)


class DeviceJob(TimestampMixin, Base):
    """A persisted device job (a print, a flash): queued → sent → done | failed, with attempts."""

    __tablename__ = "device_jobs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    plugin: Mapped[str] = mapped_column(String(64), nullable=False)
    device: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    lot_number: Mapped[str | None] = mapped_column(String(64), index=True)
    serial_number: Mapped[str | None] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    __table_args__ = (CheckConstraint("status IN ('queued', 'sent', 'done', 'failed')", name="status"),)


class StoredFile(Base):
    """A file kept on disk (firmware image, completion JSON), with its hash and retention."""

    __tablename__ = "stored_files"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordAttachment(Base):
    """A file that travels with a process record (a completion file's waveform, image, or the report
    itself), linked by the record's idempotency key: the station uploads it before the record."""

    __tablename__ = "record_attachments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_key: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id", ondelete="RESTRICT"), nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (UniqueConstraint("record_key", "name"),)


class Alert(Base):
    """Something a manager should see: a breaker opened, a station went silent."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Append-only: who did what to which entity, before and after, with a content hash."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), index=True, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    entity: Mapped[str] = mapped_column(String(64), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(128), nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)


class AuditSeal(Base):
    """A sealed block of audit entries: the digest of their hashes, chained to the previous seal."""

    __tablename__ = "audit_seals"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    first_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    entry_count: Mapped[int] = mapped_column(Integer, nullable=False)
    entries_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    seal_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class StationEvent(Base):
    """An event a station reported (scan, completion file, device result), unique by key."""

    __tablename__ = "station_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LabelTemplate(Base):
    """One version of a label template (the plant's ZPL with declared fields); prints name a version.

    A new upload under the same name is the next version; retiring marks every version of the
    name, so nothing prints from it until a new version is uploaded."""

    __tablename__ = "label_templates"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    zpl: Mapped[str] = mapped_column(Text, nullable=False)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    dpi: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    source: Mapped[str] = mapped_column(String(16), default="upload", nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_by: Mapped[str | None] = mapped_column(String(100))
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )


# kpi_hourly_lots is kept by triggers on process_items: a schema made by create_all gets them too.
install_on_create(Base.metadata)
