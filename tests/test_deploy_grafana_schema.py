"""The Grafana dashboard (deploy/grafana/dashboard.json) against Grafana's own dashboard schema.

Grafana is not installable from the registries this project uses (Debian has no package; the Go
module is AGPL), so it is not loaded into a running Grafana. Grafana publishes its dashboard
schema (generated from its CUE kinds) as the TypeScript types of ``@grafana/schema`` (npm,
Apache-2.0, a devDependency of web/): the dashboard is type-checked as an object literal of type
``Dashboard`` by the TypeScript compiler, which refuses unknown keys, missing required ones and
wrong types anywhere in the tree. Every panel query is evaluated by a real Prometheus against the
kernel's series in tests/test_deploy_monitoring.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
TSC = WEB / "node_modules" / ".bin" / "tsc"
SCHEMA = WEB / "node_modules" / "@grafana" / "schema" / "dist" / "types" / "index.d.ts"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"

pytestmark = pytest.mark.skipif(
    not (TSC.exists() and SCHEMA.exists()), reason="web/node_modules missing: run `make setup` (npm ci in web/)"
)

# Grafana's string enums (ThresholdsMode, …) are TypeScript enums, which a JSON string never is;
# AsJson turns each enum into the union of its values, and leaves every other type as it is.
PRELUDE = """import type { Dashboard } from "@grafana/schema";
type AsJson<T> = T extends string ? `${T}`
  : T extends readonly (infer U)[] ? AsJson<U>[]
  : T extends object ? { [K in keyof T]: AsJson<T[K]> }
  : T;
"""


def _typecheck(tmp_path: Path, dashboards: dict[str, dict]) -> dict[str, list[str]]:
    """Run tsc over one file per dashboard; the errors by file name."""
    for name, dashboard in dashboards.items():
        (tmp_path / f"{name}.ts").write_text(
            f"{PRELUDE}export const dashboard: AsJson<Dashboard> = {json.dumps(dashboard, indent=1)};\n"
        )
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "target": "ES2022",
            "module": "ESNext",
            "moduleResolution": "Bundler",
            "types": [],
            "paths": {"@grafana/schema": [str(SCHEMA)]},
        },
        "files": [f"{name}.ts" for name in dashboards],
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    run = subprocess.run(
        [str(TSC), "-p", str(tmp_path / "tsconfig.json")], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    errors: dict[str, list[str]] = {name: [] for name in dashboards}
    for line in run.stdout.splitlines():
        if match := re.match(r"(\w+)\.ts\(\d+,\d+\): error (.*)", line):
            errors.setdefault(match.group(1), []).append(match.group(2))
    if run.returncode != 0 and not any(errors.values()):
        pytest.fail(f"tsc failed without a type error:\n{run.stdout}{run.stderr}")
    return errors


def test_the_dashboard_is_a_grafana_dashboard_by_grafanas_schema_and_a_broken_one_is_not(tmp_path):
    shipped = json.loads(DASHBOARD.read_text())
    unknown_key = json.loads(DASHBOARD.read_text())
    unknown_key["panels"][0]["gridPosition"] = unknown_key["panels"][0].pop("gridPos")
    wrong_type = {**shipped, "schemaVersion": str(shipped["schemaVersion"])}
    errors = _typecheck(tmp_path, {"shipped": shipped, "unknown_key": unknown_key, "wrong_type": wrong_type})
    assert errors["shipped"] == [], "\n".join(errors["shipped"])
    # The check can fail: a misspelt key and a mistyped value are both refused.
    assert any("gridPosition" in e for e in errors["unknown_key"]), errors
    assert any("schemaVersion" in e or "not assignable to type 'number'" in e for e in errors["wrong_type"]), errors
