"""The Lambda image's inputs: a complete pinned runtime closure without boto3/botocore, and a handler
whose import stays light (the image's build context and Dockerfile: tests/infra/test_scorer_image.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
FROM_BASE_IMAGE = {"boto3", "botocore"}


def requirement_entries() -> list[tuple[str, list[str]]]:
    """(requirement, its --hash options) per entry of lambda_src/requirements.txt."""
    text = (LAMBDA_SRC / "requirements.txt").read_text().replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement, *options = line.split()
            entries.append((requirement, options))
    return entries


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line, _ in requirement_entries():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line} is not pinned"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_every_runtime_requirement_carries_sha256_hashes():
    for requirement, options in requirement_entries():
        assert options, f"{requirement} has no --hash"
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", option) for option in options), requirement


@pytest.mark.parametrize("platform", ["manylinux2014_x86_64", "manylinux2014_aarch64"])
def test_the_hashes_match_the_package_index_wheels_for_both_image_platforms(platform, tmp_path):
    # WHEN pip fetches the image's wheels (CPython 3.12, as in the base image) under --require-hashes
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
        + [
            "--only-binary=:all:",
            "--platform",
            platform,
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
        ]
        + ["--dest", str(tmp_path), "-r", str(LAMBDA_SRC / "requirements.txt")],
        capture_output=True,
        text=True,
    )

    # THEN every wheel it would install is one whose hash the file names (the image build does the same)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(tmp_path.glob("*.whl"))) == len(requirement_entries())


def test_runtime_requirements_are_pinned_and_exclude_base_image_and_heavy_packages():
    pins = pinned_requirements()
    assert not FROM_BASE_IMAGE & set(pins)
    assert not {"numpy", "pandas", "scikit-learn", "xgboost", "xgboost-cpu"} & set(pins)


def test_runtime_requirements_are_a_complete_closure_for_no_deps_install():
    # GIVEN the pins, installed in this venv at exactly those versions
    pins = pinned_requirements()
    environment = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0"}
    missing = set()
    for name, version in pins.items():
        assert metadata.version(name) == version, (
            f"venv has {name} {metadata.version(name)}, pinned {version}"
        )
        # WHEN we walk each pinned distribution's own runtime requirements (no extras)
        for raw in metadata.requires(name) or []:
            requirement = Requirement(raw)
            if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in pins and dependency not in FROM_BASE_IMAGE:
                missing.add(f"{dependency} (needed by {name})")
    # THEN `pip install --no-deps -r requirements.txt` leaves nothing out
    assert not missing


def test_importing_the_handler_loads_no_aws_sdk_or_xray():
    # GIVEN a fresh interpreter (as a cold container), outside Lambda
    heavy = ("boto3", "botocore.session", "aws_xray_sdk")
    code = f"import sys, handler; print(' '.join(sorted(m for m in {heavy!r} if m in sys.modules)))"

    # WHEN it imports the handler module
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=LAMBDA_SRC, capture_output=True, text=True, check=True
    ).stdout.strip()

    # THEN the heavy SDKs wait for the first invocation (Powertools itself imports only botocore's
    # light top-level package, for its user agent)
    assert loaded == ""
