"""The domain layer imports no I/O: no domain module — nor any of the project's own modules it
imports, however indirectly — imports gRPC, protobuf or the generated API code, JWT, SQL, the
broker clients or nameko (STYLE.md rule 2). Read from the source with `ast`, without importing
anything, so a violation is named with the chain of imports that reaches it."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The project's own top-level packages (the generated `carepath.v1` is forbidden outright).
OWN = ("services", "shared")
FORBIDDEN = (
    "grpc",
    "google.protobuf",
    "carepath",
    "jwt",
    "sqlalchemy",
    "psycopg",
    "pika",
    "kombu",
    "nameko",
    "eventlet",
)
#: The domain (docs/architecture.md): every service's aggregates and the mapping of their events
#: to the contract, the pure folds, and the values and declarations they share.
DOMAIN = sorted(
    [
        *ROOT.glob("services/*/domain.py"),
        *ROOT.glob("services/*/contract.py"),
        *ROOT.glob("shared/events/*.py"),
        *ROOT.glob("services/pathway/folding/**/*.py"),
        ROOT / "shared/medication_list.py",
        ROOT / "shared/domain.py",
        ROOT / "shared/actors.py",
        ROOT / "shared/ids.py",
        ROOT / "shared/apprec.py",
        ROOT / "shared/errors.py",
        ROOT / "shared/rules.py",
        ROOT / "shared/times.py",
    ]
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_of(module: str) -> Path | None:
    """The file of one of the project's own modules, or None (a third-party module, or a name
    imported from a module rather than a module)."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that runs (at module level or in a function), not those under
    `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


@cache
def imports_of(module: str) -> tuple[str, ...]:
    """The modules `module` imports: each named module, the packages above it (importing
    `a.b.c` runs `a/__init__` and `a/b/__init__`), and, for `from a import b`, `a.b` when it
    is a module."""
    path = source_of(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        names.append(base)
        names += [
            f"{base}.{alias.name}" for alias in node.names if source_of(f"{base}.{alias.name}")
        ]
    found: list[str] = []
    for name in names:
        parts = name.split(".")
        found += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return tuple(dict.fromkeys(found))


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)


def violations(start: str) -> list[str]:
    """Each forbidden import reachable from `start`, as the chain of modules that reaches it."""
    found: list[str] = []
    seen = {start}
    queue: list[tuple[str, ...]] = [(start,)]
    while queue:
        chain = queue.pop(0)
        for name in imports_of(chain[-1]):
            if forbidden(name):
                found.append(" → ".join([*chain, name]))
            elif name.split(".")[0] in OWN and name not in seen and source_of(name):
                seen.add(name)
                queue.append((*chain, name))
    return found


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_imports_no_io(path: Path) -> None:
    assert path.is_file(), f"{path} is named as domain but does not exist"
    assert violations(module_name(path)) == []


def test_the_rule_sees_an_import_through_another_module() -> None:
    """The check itself: an adapter module is caught, with the chain that reaches its driver."""
    found = violations("shared.process")
    assert any(chain.endswith("→ grpc") for chain in found), found
