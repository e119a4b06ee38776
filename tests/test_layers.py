"""The layering in one table, checked on every import statement (lazy ones too).

The API and the operator depend on the core; the transcoder on the core minus the database, the
Kubernetes client and the metrics (its image has none of their libraries); the core on nothing
above it. The command-line client (``vidconv.client``) talks HTTP only. Only ``vidconv.cli``
sees everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vidconv"
CORE = {"vidconv", "settings", "storage", "formats", "options", "outputs", "resources", "db",
        "kube", "contract", "logs", "metrics"}
ALLOWED = {
    "core": CORE,
    # The transcoder image has neither SQLAlchemy, the kubernetes client nor prometheus-client.
    "transcoder": CORE - {"db", "kube", "metrics"} | {"transcoder"},
    "operator": CORE | {"operator"},
    "api": CORE | {"api"},
    # The command-line client speaks HTTP only: nothing of the server.
    "client": {"vidconv", "client"},
}


def _layer(module: Path) -> str | None:
    top = module.relative_to(SRC).parts[0].removesuffix(".py")
    if top == "cli":
        return None
    return top if top in ("transcoder", "operator", "api", "client") else "core"


def _vidconv_imports(module: Path) -> set[str]:
    """The vidconv subpackages a module imports: ``vidconv.db.models`` -> ``db``."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "vidconv":
                found.add(parts[1] if len(parts) > 1 else "vidconv")
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if _layer(p) is not None)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_what_its_layer_may(module: Path) -> None:
    layer = _layer(module)
    assert layer is not None
    forbidden = _vidconv_imports(module) - ALLOWED[layer]
    assert not forbidden, f"{layer} module imports vidconv.{forbidden}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vidconv.api import app\n")
    assert _vidconv_imports(bad) - ALLOWED["transcoder"] == {"api"}


SERVICES = sorted((SRC / "api" / "services").glob("*.py"))


@pytest.mark.parametrize("module", SERVICES, ids=lambda p: p.name)
def test_services_see_no_http(module: Path) -> None:
    """Services take parsed values and raise their own errors; only the app maps them to HTTP."""
    imported = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    http = {name for name in imported
            if name.split(".")[0] == "starlette" or name == "vidconv.api.errors"}
    assert not http, f"{module.name} imports {http}"
