"""The Lambda image's inputs: a complete pinned runtime closure without boto3/botocore, a pinned
base image, and a handler whose import stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
FROM_BASE_IMAGE = {"boto3", "botocore"}


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in (LAMBDA_SRC / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{line} is not pinned"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


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


def test_dockerfile_uses_a_pinned_lambda_base_image_and_no_architecture():
    lines = (LAMBDA_SRC / "Dockerfile").read_text().splitlines()
    dockerfile = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    repository, tag = base.split(":")
    assert repository == "public.ecr.aws/lambda/python"
    assert re.fullmatch(r"3\.1[2-9]\.\d{4}\.\d{2}\.\d{2}\.\d{2}", tag), f"{tag} is not a dated, pinned tag"
    assert "--platform" not in dockerfile
    assert "x86_64" not in dockerfile
    assert "arm64" not in dockerfile
    assert "--no-deps" in dockerfile
    assert 'CMD ["handler.handler"]' in dockerfile


def test_importing_the_handler_loads_no_aws_sdk_or_xray():
    # GIVEN a fresh interpreter (as a cold container), outside Lambda
    heavy = ("boto3", "botocore.session", "aws_xray_sdk")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler; "
        f"print(' '.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )

    # WHEN it imports the handler module
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(LAMBDA_SRC)], capture_output=True, text=True, check=True
    ).stdout.strip()

    # THEN the heavy SDKs wait for the first invocation (Powertools itself imports only botocore's
    # light top-level package, for its user agent)
    assert loaded == ""
