"""Loading plugins: one name claimed by two distributions, pluggy wrappers inside the per-plugin
boundary, failed plugins in the health tree and without permissions."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from mes_kernel import hookimpl
from mes_kernel.contracts import Panel, Permission


def _distribution(root, dist: str, version: str, module: str, plugin_name: str) -> None:
    """An installed distribution as pip leaves it: a package and its dist-info with entry points."""
    (root / module).mkdir()
    (root / module / "__init__.py").write_text('MES_KERNEL_API = ">=1.0,<2"\n')
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mes_kernel.plugins]\n{plugin_name} = {module}\n")


@pytest.fixture
def settings(settings):
    """The kit's settings with a health budget a loaded machine keeps: tests here read the tree's
    overall status (a failed plugin leaves it DEGRADED), which a database check cut off at the
    default 2 s on a busy machine turns DOWN."""
    return settings.model_copy(update={"health_check_timeout": 30.0})


@pytest.fixture
def twins(tmp_path, monkeypatch):
    """Two distributions from two vendors that both call their plugin ``twin``."""
    root = tmp_path / "site"
    root.mkdir()
    _distribution(root, "acme-twin", "1.0", "acme_twin", "twin")
    _distribution(root, "globex-twin", "2.3", "globex_twin", "twin")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


async def test_two_distributions_declaring_one_name_are_both_listed_and_neither_loaded(twins, client, admin_headers):
    listed = [
        p for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"] if p["name"] == "twin"
    ]
    assert sorted((p["distribution"], p["version"], p["state"]) for p in listed) == [
        ("acme-twin", "1.0", "failed"),
        ("globex-twin", "2.3", "failed"),
    ]
    for p in listed:
        assert "acme-twin 1.0" in p["reason"] and "globex-twin 2.3" in p["reason"]
    node = (await client.get("/api/v1/health", headers=admin_headers)).json()["components"]["plugins"]["checks"]["twin"]
    assert node["status"] == "DEGRADED" and node["critical"] is False and node["state"] == "failed"
    assert "acme-twin" in node["reason"] and "globex-twin" in node["reason"]


async def test_the_deny_list_can_name_one_distribution_of_a_conflict(twins, settings):
    from mes_kernel.app import create_app

    app = create_app(settings.model_copy(update={"plugins_deny": ["globex-twin"]}))
    async with app.router.lifespan_context(app):
        listed = {p["distribution"]: p for p in app.state.kernel.plugins.snapshot() if p["name"] == "twin"}
        assert listed["acme-twin"]["state"] == "loaded"
        assert listed["globex-twin"]["state"] == "disabled" and "PLUGINS_DENY" in listed["globex-twin"]["reason"]
        assert listed["globex-twin"]["reason_code"] == "DISTRIBUTION_DENIED"
        assert listed["globex-twin"]["reason_params"] == {"distribution": "globex-twin"}
        assert app.state.kernel.plugins.is_active("twin")


class Catalogue:
    MES_KERNEL_API = ">=1.0"

    @hookimpl
    def mes_register_panels(self):
        return [Panel("yield-stat", "Yield", "stat", "/y"), Panel("yield-bars", "Yield by hour", "bar", "/yb")]


class NewStyleWrapper:
    """``wrapper=True``: runs around each plugin's implementation and may change its result."""

    MES_KERNEL_API = ">=1.0"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def mes_register_panels(self):
        self.calls += 1
        result = yield
        return [[p for p in panels if p.kind != "bar"] for panels in result]


class OldStyleWrapper:
    """``hookwrapper=True``: sees the outcome and may force another result."""

    MES_KERNEL_API = ">=1.0"

    @hookimpl(hookwrapper=True)
    def mes_register_panels(self):
        outcome = yield
        outcome.force_result(
            [[Panel(p.id, p.title.upper(), p.kind, p.endpoint) for p in panels] for panels in outcome.get_result()]
        )


new_style = NewStyleWrapper()


@pytest.mark.mes_plugins(Catalogue(), new_style, OldStyleWrapper())
async def test_wrapper_hookimpls_keep_their_pluggy_meaning(client, admin_headers):
    panels = {
        p["id"]: p
        for p in (await client.get("/api/v1/dashboard/panels", headers=admin_headers)).json()
        if p["plugin"] == "Catalogue"
    }
    assert list(panels) == ["yield-stat"] and panels["yield-stat"]["title"] == "YIELD"
    assert new_style.calls >= 1
    listed = {p["name"]: p for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"]}
    assert listed["NewStyleWrapper"]["state"] == listed["OldStyleWrapper"]["state"] == "loaded"
    assert listed["NewStyleWrapper"]["panels"] == []  # a wrapper contributes nothing of its own


class BrokenWrapper:
    MES_KERNEL_API = ">=1.0"

    @hookimpl(wrapper=True)
    def mes_register_panels(self):
        yield
        raise RuntimeError("wrapper lost its way")


@pytest.mark.mes_plugins(Catalogue(), BrokenWrapper())
async def test_a_wrapper_that_raises_is_the_one_marked_failed(client, admin_headers):
    listed = {p["name"]: p for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"]}
    assert listed["BrokenWrapper"]["state"] == "failed" and "wrapper lost its way" in listed["BrokenWrapper"]["reason"]
    assert listed["Catalogue"]["state"] == "loaded" and listed["Catalogue"]["panels"] == ["yield-stat", "yield-bars"]


class FailsAfterPermissions:
    MES_KERNEL_API = ">=1.0"

    @hookimpl
    def mes_register_permissions(self):
        return [Permission("gauge:read", "Read gauges", ("worker",))]

    @hookimpl
    def mes_register_routers(self, kernel):
        raise RuntimeError("gauge SDK missing")


@pytest.mark.mes_plugins(FailsAfterPermissions())
async def test_a_failed_plugin_loses_its_permissions_and_shows_in_health(client, admin_headers, worker_headers):
    me = (await client.get("/api/v1/auth/me", headers=worker_headers)).json()
    assert "gauge:read" not in me["permissions"]
    assert "gauge:read" not in (await client.get("/api/v1/auth/me", headers=admin_headers)).json()["permissions"]
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    node = tree["components"]["plugins"]["checks"]["FailsAfterPermissions"]
    assert (node["status"], node["state"], node["critical"]) == ("DEGRADED", "failed", False)
    assert "gauge SDK missing" in node["reason"]
    assert tree["status"] == "DEGRADED" and tree["critical_down"] == []


@pytest.fixture
def pytester_like(tmp_path):
    """Run pytest in a fresh project folder with no pytest configuration at all, as a plugin author
    would on their own package (SQLite only, to stay fast)."""

    def run(source: str, *args: str) -> subprocess.CompletedProcess:
        project = tmp_path / "author-project"
        project.mkdir()
        (project / "test_author.py").write_text(source)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_TEST_", "PYTEST_"))}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_author.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def test_the_test_kit_sets_its_own_pytest_asyncio_options(pytester_like):
    result = pytester_like(
        textwrap.dedent("""
        async def test_async_without_any_configuration(client, admin_headers):
            r = await client.get("/api/v1/health/liveness")
            assert r.status_code == 200
    """)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_test_kit_registers_every_marker_it_puts_on_tests(pytester_like):
    """The kit parametrizes tests with a ``postgres`` marker: registered by the kit itself, so an author's
    run has no PytestUnknownMarkWarning and ``--strict-markers`` (a common setting) does not fail."""
    result = pytester_like(
        textwrap.dedent("""
        async def test_liveness(client):
            assert (await client.get("/api/v1/health/liveness")).status_code == 200
    """),
        "--strict-markers",
        "-W",
        "error::pytest.PytestUnknownMarkWarning",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PytestUnknownMarkWarning" not in result.stdout + result.stderr
