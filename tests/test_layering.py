"""The import rules of ARCHITECTURE.md, enforced by walking every module's imports with ast."""
import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("memory", "graph", "retrieval", "inference", "api")
ALLOWED = {
    "memory": set(),
    "retrieval": {"memory"},
    "graph": {"memory"},
    "inference": set(),
    "api": {"memory", "retrieval", "graph", "inference"},
}
# Heavy libraries stay in their room (module prefix → packages allowed to import it).
HEAVY = {
    "torch": {"inference", "retrieval"},
    "faiss": {"retrieval"},
    "networkx": {"graph"},
    "sqlalchemy": {"memory", "graph"},
    "alembic": {"memory", "graph"},
    "psycopg": {"memory"},
    "fastapi": {"api"},
    "uvicorn": {"api"},
    "sentence_transformers": {"retrieval"},
}
# Only these retrieval modules may touch memory, and only its types (plus the store-free helpers).
# graph may also run its own migration tree through memory's runner (SQL plumbing, not memory's domain).
RETRIEVAL_MAY_IMPORT = {"memory.types", "memory.errors", "memory.clock", "memory.timeutil", "memory.sqltypes",
                        "memory.migrate", "memory.transactions", "memory.ids"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield pkg, path


@pytest.mark.parametrize(("pkg", "path"), list(_modules()), ids=lambda v: str(v).replace(str(ROOT), ""))
def test_module_respects_layering(pkg, path):
    for name in _imports(path):
        top = name.split(".")[0]
        if top in PACKAGES and top != pkg:
            assert top in ALLOWED[pkg], f"{path.relative_to(ROOT)} imports {name}: {pkg} may not import {top}"
            if pkg in ("retrieval", "graph"):
                assert name in RETRIEVAL_MAY_IMPORT, f"{path.relative_to(ROOT)} imports {name}: types only"
        if top in HEAVY:
            assert pkg in HEAVY[top], f"{path.relative_to(ROOT)} imports {top}, which belongs to {HEAVY[top]}"


def test_the_walker_sees_forbidden_edges(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import faiss\nfrom retrieval.hybrid import HybridIndex\n")
    assert {"faiss", "retrieval.hybrid"} <= _imports(bad)


def test_sqlalchemy_stays_in_store_modules():
    users = {p.relative_to(ROOT).as_posix() for _, p in _modules() if any(n.startswith("sqlalchemy") for n in _imports(p))}
    stores = {"memory/schema.py", "memory/store.py", "memory/jobs.py", "memory/database.py", "memory/sqltypes.py",
              "memory/accounts.py", "memory/migrate.py", "memory/notify.py", "memory/transactions.py", "memory/bulk.py",
              "memory/deferred_indexes.py",
              "graph/schema.py", "graph/store.py"}
    migrations = {u for u in users if u.startswith(("memory/migrations/", "memory/accounts_migrations/", "graph/migrations/"))}
    assert users - migrations <= stores, users
