"""Add the package index's SHA-256 of every wheel the scorer's image can install to
lambda_src/requirements.txt, for both image platforms, so the image builds with `--require-hashes`.

    .venv/bin/python scripts/hash_lambda_requirements.py     # after changing a pin

It downloads (never installs) the pinned wheels for CPython 3.12 (the Lambda base image's) on
manylinux x86_64 and aarch64, and writes each pin with every hash it may meet on either platform.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "lambda_src" / "requirements.txt"
PLATFORMS = ("manylinux2014_x86_64", "manylinux2014_aarch64")
PYTHON_VERSION = "3.12"


def pins(text: str) -> list[str]:
    """The `name==version` lines, without hashes or continuations."""
    joined = text.replace("\\\n", " ")
    return [
        line.split()[0] for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_hashes(requirements: list[str]) -> dict[str, set[str]]:
    hashes: dict[str, set[str]] = {}
    for platform in PLATFORMS:
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
                + ["--platform", platform, "--python-version", PYTHON_VERSION, "--implementation", "cp"]
                + ["--dest", folder, *requirements],
                check=True,
            )
            for wheel in Path(folder).glob("*.whl"):
                name = normalized(wheel.name.split("-")[0])
                hashes.setdefault(name, set()).add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    return hashes


def main() -> None:
    text = REQUIREMENTS.read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    requirements = pins(text)
    hashes = wheel_hashes(requirements)
    lines = list(comments)
    for requirement in requirements:
        found = sorted(hashes[normalized(requirement.split("==")[0])])
        lines.append(" \\\n".join([requirement, *(f"    --hash=sha256:{digest}" for digest in found)]))
    REQUIREMENTS.write_text("\n".join(lines) + "\n")
    print(f"{len(requirements)} pins, {sum(map(len, hashes.values()))} hashes -> {REQUIREMENTS}")


if __name__ == "__main__":
    main()
