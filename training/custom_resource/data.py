"""Prepare the training data in the Lambda's /tmp and upload it once per content hash.

The source is the simulated data (default), the i.i.d. synthetic fixture, or a fetched file whose pinned
SHA-256 is verified before anything is prepared from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

from training import prepare
from training.custom_resource import naming
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.properties import Properties
from training.custom_resource.storage import Storage

logger = logging.getLogger(__name__)

LOGGED_FIELDS = ("source", "rows_valid", "rows_malformed", "splits", "feature_spec_version", "sha256")


def prepare_and_upload(props: Properties, storage: Storage, workdir: Path) -> tuple[dict, str]:
    """Prepare the splits and upload them under their hash unless already there; (manifest, prefix)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / "prepared"
        manifest = _prepare(props, storage, Path(tmp), out)
        logger.info("prepared %s", json.dumps({k: manifest[k] for k in LOGGED_FIELDS}))
        prefix = prepared_prefix(manifest)
        if not storage.exists(props.bucket, prefix + prepare.MANIFEST):
            for name in manifest["files"]:
                storage.upload(out / name, props.bucket, prefix + name)
            # The manifest goes last: its presence means the whole prepared set is there.
            storage.upload(out / prepare.MANIFEST, props.bucket, prefix + prepare.MANIFEST)
    return manifest, prefix


def prepared_prefix(manifest: dict) -> str:
    return f"{naming.PREFIXES.prepared}{manifest['sha256'][:32]}/"


def _prepare(props: Properties, storage: Storage, tmp: Path, out: Path) -> dict:
    if props.source == prepare.SYNTHETIC:
        return prepare.prepare_source(prepare.SYNTHETIC, out, synthetic_rows=props.synthetic_rows)
    if props.source == prepare.SIMULATED:
        return prepare.prepare_source(prepare.SIMULATED, out, simulation=props.simulation)
    local = storage.fetch(props.source, tmp / "source")
    verify_sha256(local, props.source, props.source_sha256)
    return prepare.prepare_source(local, out)


def verify_sha256(path: Path, source: str, expected: str | None) -> str:
    """The file's SHA-256; TrainingFailed if a pinned value is given and differs."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    logger.info("source %s has sha256 %s", source, actual)
    if expected is not None and actual != expected:
        raise TrainingFailed(
            f"the training data at {source} has SHA-256 {actual}, but trainingDataSha256 pins {expected}: "
            "refusing to train on a different file. If the source changed on purpose, check the new file "
            "and deploy with -c trainingDataSha256=<its SHA-256>."
        )
    return actual
