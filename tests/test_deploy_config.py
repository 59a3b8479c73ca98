"""deploy/ files: they parse, carry the spec's numbers, and pass their own tools' checks where installed.

Tools come from Debian packages: promtool (``prometheus``), amtool (``prometheus-alertmanager``),
systemd-analyze (``systemd``), logrotate (``logrotate``). A missing tool skips its test with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from datetime import date
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the compose and Prometheus files")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _tool(name: str, package: str):
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    return pytest.mark.skipif(path is None, reason=f"{name} not installed (Debian package {package})"), path


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


# ---------------------------------------------------------------- docker compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_stack_with_pinned_major_versions(compose):
    services = compose["services"]
    assert {
        "kernel",
        "migrate",
        "postgres",
        "redis",
        "nginx",
        "prometheus",
        "alertmanager",
        "grafana",
        "node-exporter",
    } <= services.keys()
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]  # AOF, the spec


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_start_order_waits_for_health_and_migrations(compose):
    services = compose["services"]
    assert services["kernel"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["mes", "db", "upgrade"]
    assert services["nginx"]["depends_on"]["kernel"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_kernel_container_probes_readiness_and_image_probes_liveness(compose):
    assert "/api/v1/health/readiness" in " ".join(compose["services"]["kernel"]["healthcheck"]["test"])
    assert "/api/v1/health/liveness" in (DEPLOY / "Dockerfile").read_text()


def test_named_volumes_are_declared_and_bind_mounts_exist(compose):
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"bind mount {source} missing in deploy/"
            elif not source.startswith("/"):
                used.add(source)
    assert used == declared


def test_only_nginx_and_a_local_grafana_publish_ports(compose):
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"nginx": ["80:80", "443:443"], "grafana": ["127.0.0.1:3000:3000"]}


def test_kernel_settings_come_from_the_environment_with_secrets_required(compose):
    env = compose["services"]["kernel"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert ":?" in env["SECRET_KEY"] and env["ENVIRONMENT"] == "production"
    documented = set(re.findall(r"^([A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M))
    referenced = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "docker-compose.yml").read_text()))
    assert referenced <= documented, f"undocumented in env.example: {referenced - documented}"


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_stages_copy_only_what_exists_and_run_as_non_root():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.M)
    assert stages == ["web", "build", "nginx", "kernel"]  # the kernel is the default (last) target
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert source == "." or (ROOT / source).exists(), f"COPY of missing {source}"
    kernel_stage = text.split("AS kernel", 1)[1]
    assert re.search(r"^USER mes$", kernel_stage, re.M)
    assert "HEALTHCHECK" in kernel_stage and 'CMD ["gunicorn", "-c", "/etc/mes/gunicorn.conf.py"]' in kernel_stage
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {s["build"]["target"] for s in compose["services"].values() if "build" in s} <= set(stages)


# ---------------------------------------------------------------- Railway and AWS


def test_railway_probes_liveness_and_restarts_on_failure():
    deploy = tomllib.loads((DEPLOY / "railway.toml").read_text())["deploy"]
    assert deploy["healthcheckPath"] == "/api/v1/health/liveness"
    assert deploy["healthcheckTimeout"] == 100
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert deploy["restartPolicyMaxRetries"] == 10


def test_alb_target_group_checks_readiness_with_the_spec_numbers():
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 reads the Terraform file")
    with (DEPLOY / "terraform" / "alb.tf").open() as fh:
        parsed = hcl2.load(fh)

    def unquote(value):
        return value.strip('"') if isinstance(value, str) else value

    resources: dict[str, dict] = {}
    for entry in parsed["resource"]:
        for kind, named in entry.items():
            for name, body in named.items():
                resources.setdefault(unquote(kind), {})[unquote(name)] = body
    group = resources["aws_lb_target_group"]["neurohub_backend"]
    check = {k: unquote(v) for k, v in group["health_check"][0].items() if not k.startswith("__")}
    assert check["path"] == "/api/v1/health/readiness"
    assert (check["interval"], check["timeout"]) == (30, 5)
    assert (check["healthy_threshold"], check["unhealthy_threshold"]) == (2, 3)
    assert group["deregistration_delay"] == 30 and group["port"] == 8000
    assert unquote(resources["aws_lb_listener"]["https"]["protocol"]) == "HTTPS"


# ---------------------------------------------------------------- Prometheus, Alertmanager, Grafana

promtool_mark, PROMTOOL = _tool("promtool", "prometheus")
amtool_mark, AMTOOL = _tool("amtool", "prometheus-alertmanager")


def test_prometheus_scrapes_every_15_seconds_with_the_rules():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules.yml"]
    assert "mes-kernel" in {job["job_name"] for job in config["scrape_configs"]}
    retention = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=90d" in retention


def test_rules_cover_the_spec_alerts():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "HostCpuHigh",
        "HostMemoryHigh",
        "ApiLatencyP95High",
        "ApiErrorRateHigh",
        "CircuitBreakerOpen",
        "StationSilent",
        "KernelDown",
    } == alerts.keys()
    assert alerts["HostCpuHigh"]["for"] == "5m" and "> 80" in alerts["HostCpuHigh"]["expr"]
    assert "> 85" in alerts["HostMemoryHigh"]["expr"]
    assert "0.95" in alerts["ApiLatencyP95High"]["expr"] and "> 0.5" in alerts["ApiLatencyP95High"]["expr"]
    assert "> 0.01" in alerts["ApiErrorRateHigh"]["expr"]


@promtool_mark
def test_promtool_accepts_config_and_rules():
    result = _run(PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


@promtool_mark
def test_alert_rules_fire_when_they_should_and_not_before():
    # deploy/prometheus/rules_test.yml feeds series through each rule (CPU, memory, p95, errors,
    # breakers, silent stations, kernel down) and states which alerts fire at which time.
    result = _run(PROMTOOL, "test", "rules", "rules_test.yml", cwd=DEPLOY / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr


@amtool_mark
def test_amtool_accepts_the_alertmanager_config():
    result = _run(AMTOOL, "check-config", str(DEPLOY / "prometheus" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_queries_only_metrics_that_exist():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    assert dashboard["uid"] == "neurohub-mes"
    known = {
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "mes_breaker_state",
        "mes_station_heartbeat_age_seconds",
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
    }
    functions = {
        "histogram_quantile",
        "sum",
        "rate",
        "max",
        "count",
        "avg",
        "topk",
        "vector",
        "by",
        "le",
        "or",
        "mode",
        "idle",
        "status",
        "route",
        "breaker",
        "station",
        "instance",
    }
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", re.sub(r'"[^"]*"|\[[^]]*\]', "", target["expr"])))
            unknown = names - known - functions
            assert not unknown, f"panel {panel['title']!r} uses unknown names {unknown}"
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == dashboard["panels"][0]["datasource"]["uid"]


def test_kernel_exports_the_metrics_the_rules_use():
    metrics = pytest.importorskip("mes_kernel.metrics")
    world = metrics.WorldCollector()
    world.up = {"database": 1, "breakers": 1}
    families = {family.name: family for family in world.collect()}
    exported = {metrics.REQUESTS._name, metrics.LATENCY._name} | (
        {"mes_breaker_state", "mes_station_heartbeat_age_seconds"} & set(families)
    )
    # prometheus_client strips "_total" from a counter's stored name.
    assert exported == {
        "http_requests",
        "http_request_duration_seconds",
        "mes_breaker_state",
        "mes_station_heartbeat_age_seconds",
    }
    assert metrics.LATENCY._labelnames == ("method", "route", "status")
    assert families["mes_breaker_state"]._labelnames == ("breaker",)
    assert families["mes_station_heartbeat_age_seconds"]._labelnames == ("station",)


# ---------------------------------------------------------------- systemd, logrotate, cron

systemd_mark, SYSTEMD_ANALYZE = _tool("systemd-analyze", "systemd")
logrotate_mark, LOGROTATE = _tool("logrotate", "logrotate")


@systemd_mark
def test_systemd_units_verify_cleanly(tmp_path):
    # verify also checks that ExecStart binaries exist: point the venv paths at stand-ins.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("mes", "gunicorn", "mes-station"):
        (stubs / name).write_text("#!/bin/sh\n")
        (stubs / name).chmod(0o755)
    units = []
    for unit in ("mes-kernel.service", "mes-station.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        text = re.sub(r"/opt/mes(-station)?/venv/bin/", f"{stubs}/", text)
        (tmp_path / unit).write_text(text)
        units.append(str(tmp_path / unit))
    result = _run(SYSTEMD_ANALYZE, "verify", *units)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stderr


def test_kernel_unit_runs_gunicorn_with_the_deploy_config():
    text = (DEPLOY / "systemd" / "mes-kernel.service").read_text()
    assert "ExecStart=/opt/mes/venv/bin/gunicorn -c /opt/mes/deploy/gunicorn.conf.py" in text
    assert "PROMETHEUS_MULTIPROC_DIR=/run/mes-kernel/prometheus" in text and "RuntimeDirectory=mes-kernel" in text


@logrotate_mark
def test_logrotate_keeps_30_days_of_neurohub_logs(tmp_path):
    logs = tmp_path / "neurohub"
    logs.mkdir()
    (logs / "kernel.log").write_text('{"event": "request"}\n' * 10)
    conf = (DEPLOY / "logrotate" / "neurohub").read_text()
    assert "/var/log/neurohub/*.log" in conf and re.search(r"^\s+rotate 30$", conf, re.M)
    conf = conf.replace("/var/log/neurohub/", f"{logs}/").replace("su root root", f"su {os.getuid()} {os.getgid()}")
    (tmp_path / "neurohub.conf").write_text(conf)
    result = _run(LOGROTATE, "--force", "--state", str(tmp_path / "state"), str(tmp_path / "neurohub.conf"))
    assert result.returncode == 0, result.stderr
    rotated = sorted(p.name for p in logs.iterdir())
    assert rotated == ["kernel.log", f"kernel.log-{date.today():%Y%m%d}"]
    assert (logs / "kernel.log").read_text() == ""  # copytruncate: the writer's file stays in place


def test_backup_runs_nightly_at_two():
    lines = [
        ln
        for ln in (DEPLOY / "backup" / "mes-backup.cron").read_text().splitlines()
        if ln and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    assert len(lines) == 1
    minute, hour, dom, month, dow, user, *command = lines[0].split()
    assert (minute, hour, dom, month, dow, user) == ("0", "2", "*", "*", "*", "mes")
    assert "pg_backup.sh" in " ".join(command)
