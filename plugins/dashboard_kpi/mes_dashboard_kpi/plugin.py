"""Hook implementations: the dashboard plugin's routes, permission and panels."""

from __future__ import annotations

from mes_kernel import hookimpl
from mes_kernel.contracts import Panel, Permission

from .calendars import SHIFTS_BACKDATE
from .routes import KPI_READ, READ, SHIFTS_WRITE, build_routers

MES_KERNEL_API = ">=1.0,<2"

API = "/api/v1"


@hookimpl
def mes_register_routers(kernel):
    return build_routers(kernel)


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            READ,
            "See production KPIs, dashboard panels and alerts",
            ("production_manager", "worker", "viewer", "quality_manager", "executive"),
        ),
        Permission(
            KPI_READ,
            "Read OEE, yield, Pareto, output against plan and shift calendars over a date range",
            ("production_manager", "viewer", "quality_manager", "executive"),
        ),
        Permission(SHIFTS_WRITE, "Edit a line's shift calendar from today on", ("production_manager",)),
        Permission(SHIFTS_BACKDATE, "Date a shift calendar change before today (rewrites past plans and OEE)", ()),
    ]


#: the panels' texts in the managers' other language (``Panel.translations``)
PANEL_TRANSLATIONS = {
    "ko": {
        "First-pass yield today": "오늘 직행률",
        "{first_pass} of {first_attempts} first tries": "첫 시도 {first_attempts}건 중 {first_pass}건 합격",
        "Process records per hour (24 h)": "시간별 공정 기록 (24시간)",
        "pass": "합격",
        "fail": "불합격",
        "Defects today by code": "오늘 불량 코드별 건수",
        "Open alerts": "미해결 경보",
        "Severity": "심각도",
        "Source": "출처",
        "Message": "메시지",
        "Raised": "발생 시각",
        # the alerts' values, by word (severity, source) and by code (the message: mes_kernel/notify.py and
        # services/stations.py write it in English for the webhook and the mail)
        "critical": "심각",
        "warning": "경고",
        "info": "정보",
        "breaker": "회로 차단기",
        "station": "스테이션",
        "BREAKER_OPEN": "회로 차단기 {breaker}이(가) {failures}회 실패 후 열렸습니다",
        "STATION_SILENT": "스테이션 {station}이(가) {silent_seconds}초 동안 응답이 없습니다",
        "STATION_BACKLOG": "스테이션 {station}의 전송 대기열이 계속 늘고 있습니다 (대기 {queued}건)",
    }
}


@hookimpl
def mes_register_panels():
    # Each endpoint answers plain JSON; ``options`` tell the shell where in it the data are.
    return [
        Panel(
            id="dashboard_kpi.yield_today",
            title="First-pass yield today",
            kind="stat",
            endpoint=f"{API}/dashboard/kpi/yield",
            refresh_seconds=10,
            permission="dashboard:read",
            translations=PANEL_TRANSLATIONS,
            options={
                "value": "value",
                "format": "percent",
                "caption": "{first_pass} of {first_attempts} first tries",
            },
        ),
        Panel(
            id="dashboard_kpi.throughput",
            title="Process records per hour (24 h)",
            kind="timeseries",
            endpoint=f"{API}/dashboard/kpi/throughput",
            refresh_seconds=60,
            permission="dashboard:read",
            translations=PANEL_TRANSLATIONS,
            options={"items": "points", "x": "hour", "series": ["pass", "fail"], "stacked": True},
        ),
        Panel(
            id="dashboard_kpi.defects",
            title="Defects today by code",
            kind="bar",
            endpoint=f"{API}/dashboard/kpi/defects",
            refresh_seconds=30,
            permission="dashboard:read",
            translations=PANEL_TRANSLATIONS,
            options={"items": "items", "label": "defect_code", "value": "count"},
        ),
        Panel(
            id="dashboard_kpi.alerts",
            title="Open alerts",
            kind="table",
            endpoint=f"{API}/alerts",
            refresh_seconds=30,
            permission="dashboard:read",
            translations=PANEL_TRANSLATIONS,
            options={
                "items": "items",
                "columns": [
                    {"key": "severity", "title": "Severity", "translate": True},
                    {"key": "source", "title": "Source", "translate": True},
                    {"key": "message", "title": "Message", "code": "detail.code", "params": "detail"},
                    {"key": "raised_at", "title": "Raised", "format": "datetime"},
                ],
            },
        ),
    ]
