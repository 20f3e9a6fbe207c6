"""The composition root's shape: shared/ knows no service (services/bootstrap.py names them), and
every service with a store is named there once, with its application and its api."""

from __future__ import annotations

import ast
from pathlib import Path

from services.__main__ import STORES
from services.bootstrap import DOMAIN_SERVICES, STREAMS

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_shared_library_imports_no_service() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m == "services" or m.startswith("services.")
        )
        for path in sorted((ROOT / "shared").rglob("*.py"))
    }
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_every_service_with_a_store_is_named_once_with_its_application_and_api() -> None:
    named = {**DOMAIN_SERVICES, STREAMS.name: STREAMS}
    assert set(named) == set(STORES) - {"pathway", "audit"}
    for name, service in named.items():
        assert service.name == name
        assert service.api.SERVICE_NAMES, name
        assert service.application.__module__ == f"services.{name}.application"
        assert service.api.__name__ == f"services.{name}.api"  # type: ignore[attr-defined]
