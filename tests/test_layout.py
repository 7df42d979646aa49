"""The repository's layout rules (docs/architecture.md, *Repository layout*): top-level packages
import one another without cycles, nothing but tests edits sys.path, and every package is installed."""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = (REPO, REPO / "lambda_src")  # where top-level packages live


def top_level_packages() -> dict[str, Path]:
    packages = {}
    for root in PACKAGE_ROOTS:
        for init in root.glob("*/__init__.py"):
            if init.parent.name != "tests":
                packages[init.parent.name] = init.parent
    return packages


def imports_between_packages() -> dict[str, set[str]]:
    packages = top_level_packages()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, folder in packages.items():
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    targets = [node.module]
                else:
                    continue
                for target in targets:
                    top = target.split(".")[0]
                    if top in packages and top != name:
                        graph[name].add(top)
    return graph


def test_top_level_packages_import_one_another_without_cycles():
    graph = imports_between_packages()
    # Depth-first search for a back edge; report the cycle found.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_contracts_and_the_runtimes_depend_on_nothing_they_should_not():
    graph = imports_between_packages()

    assert graph.get("contracts", set()) == set()  # shipped alone into the scorer's image
    assert graph.get("fraud_scorer", set()) <= {"contracts"}  # the image holds nothing else
    assert graph.get("fraud_data", set()) <= {"contracts"}  # runs in the training Lambda
    assert "stacks" not in set().union(*(graph.get(p, set()) for p in graph if p != "stacks"))


def test_nothing_outside_tests_edits_sys_path():
    offenders = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in {"tests", ".venv", "node_modules", "cdk.out", ".cache"}:
            continue
        if "sys.path" in path.read_text():
            offenders.append(str(relative))
    assert offenders == []


def test_every_top_level_package_is_installed_by_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    included = {pattern.rstrip("*") for pattern in config["include"]}

    assert set(top_level_packages()) <= included
