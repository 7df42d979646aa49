"""Synthesize the CDK app for a context, once per distinct context for the whole test session.

Synthesis takes several seconds, so every test module (the core stack's, the models', Grafana's)
shares the cache: ask for the same overrides and you get the same `Synth`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# jsii's end-of-life banner for the running Node major version (as the Makefile and .ci/run set it).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402  (after the env var, which jsii reads at import)
from aws_cdk.assertions import Template  # noqa: E402

from app import build_app  # noqa: E402
from stacks.fraud_detection_stack import FraudDetectionStack  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
_OUTDIR_ROOT = Path(tempfile.mkdtemp(prefix="cdk-tests-"))


def cdk_json_context() -> dict[str, Any]:
    """The context defaults the CLI would pass (cdk.json)."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass(frozen=True)
class Synth:
    stack: FraudDetectionStack
    template: Template
    outdir: Path
    assembly: cdk.cx_api.CloudAssembly

    @property
    def template_json(self) -> dict[str, Any]:
        return self.template.to_json()

    def template_files(self) -> list[Path]:
        """Every CloudFormation template in the cloud assembly (the stack's and any nested stack's)."""
        return sorted(self.outdir.glob("*.template.json"))

    def asset_manifest(self) -> dict[str, Any]:
        return json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())


_cache: dict[str, Synth] = {}


def new_app(overrides: dict[str, Any] | None = None, *, outdir: Path | None = None) -> cdk.App:
    context = {**cdk_json_context(), **(overrides or {})}
    return cdk.App(context=context, outdir=str(outdir) if outdir else None)


def synth(overrides: dict[str, Any] | None = None) -> Synth:
    """Build and synthesize the app (cdk-nag included) with cdk.json's context plus `overrides`."""
    key = json.dumps(overrides or {}, sort_keys=True)
    if key not in _cache:
        outdir = Path(tempfile.mkdtemp(dir=_OUTDIR_ROOT))
        app = new_app(overrides, outdir=outdir)
        stack = build_app(app)
        # app.synth() runs the validation plugins (cdk-nag): any unacknowledged finding raises here.
        assembly = app.synth()
        template = Template.from_json(
            json.loads((outdir / stack.template_file).read_text()), skip_cyclical_dependencies_check=True
        )
        _cache[key] = Synth(stack=stack, template=template, outdir=outdir, assembly=assembly)
    return _cache[key]
