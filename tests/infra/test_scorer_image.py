"""The scorer's image as `cdk deploy` would build it: its build context holds exactly the scorer and
the contracts it imports (from their one home, not a copy), and the files the Dockerfile copies
into the task root make a handler that imports and runs its modules without the rest of the repo."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

from tests.infra.synth import Synth

SCORER_IMAGE = "Scorer/Function/AssetImage"


def scorer_image_context(synth: Synth) -> tuple[Path, dict]:
    images = synth.asset_manifest()["dockerImages"].values()
    (image,) = [i for i in images if i["displayName"].endswith(SCORER_IMAGE)]
    return synth.outdir / image["source"]["directory"], image["source"]


def test_build_context_holds_only_the_scorer_and_the_contracts(default_synth):
    context, source = scorer_image_context(default_synth)

    files = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())

    assert source.get("dockerFile") == "lambda_src/Dockerfile"
    assert sorted({f.split("/")[0] for f in files}) == ["contracts", "lambda_src"]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "lambda_src/handler.py" in files
    assert "contracts/features.py" in files


def test_the_dockerfile_pins_a_dated_lambda_base_image_and_lets_the_asset_choose_the_platform(default_synth):
    context, source = scorer_image_context(default_synth)
    dockerfile = (context / source["dockerFile"]).read_text()

    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    repository, tag = base.split(":")
    assert repository == "public.ecr.aws/lambda/python"
    assert re.fullmatch(r"3\.1[2-9]\.\d{4}\.\d{2}\.\d{2}\.\d{2}", tag), f"{tag} is not a dated, pinned tag"
    # The architecture comes from the CDK asset's platform, never from the Dockerfile.
    assert "--platform" not in dockerfile
    assert source["platform"] == "linux/amd64"


def test_the_copied_task_root_imports_and_builds_the_scorer_without_the_repository(default_synth, tmp_path):
    # GIVEN the task root the Dockerfile's COPY instructions make from the staged build context
    context, source = scorer_image_context(default_synth)
    dockerfile = (context / source["dockerFile"]).read_text()
    task_root = tmp_path / "task"
    task_root.mkdir()
    copies = re.findall(r"^COPY\s+(\S+)\s+\$\{LAMBDA_TASK_ROOT\}/(\S*)$", dockerfile, re.M)
    assert copies, "the Dockerfile copies nothing into the task root"
    for source_path, destination in copies:
        # Docker's rules for these forms: a directory's contents go to the destination directory;
        # a file goes into a destination ending in "/" (or the root itself) under its own name.
        origin = context / source_path.rstrip("/")
        if origin.is_dir():
            shutil.copytree(origin, task_root / destination.rstrip("/"))
        else:
            shutil.copy(origin, task_root / destination / origin.name)
    (cmd,) = re.findall(r'^CMD \["([\w.]+)"\]', dockerfile, re.M)
    module, function = cmd.rsplit(".", 1)

    # WHEN a fresh interpreter starts there, with installed packages but not this repository
    # (-S: site-packages is added by hand, without the .pth files of the project's editable install)
    site_packages = str(Path(boto3.__file__).resolve().parents[1])
    probe = (
        f"import sys; sys.path[:0] = ['.']; sys.path.append({site_packages!r}); "
        f"import {module}; assert callable({module}.{function}); "
        "import fraud_scorer.batch, fraud_scorer.store, fraud_scorer.schema, fraud_scorer.sagemaker; "
        "print(sorted({m.__file__.split('/task/')[0] == sys.argv[1] for m in "
        "[sys.modules['contracts'], sys.modules['fraud_scorer']]}))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(tmp_path)], cwd=task_root, capture_output=True, text=True
    )

    # THEN every module the function needs is in the image, and was loaded from it
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True]"
