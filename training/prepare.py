"""Data preparation shared by SageMaker training (inside the custom-resource Lambda) and the local twin.

Three sources, one output format:

* `simulated` (the deployment's default): the Handbook-style simulator (`fraud_data.simulator`),
  seeded, then the offline point-in-time features of `contracts.features.MODEL_FEATURES`
  (`fraud_data.features`). Transactions inside the first `RETENTION_MS` (37 days: the longest window
  plus its delay) are left out, because their windows are not full yet - the deployed feature store
  always has full windows. The rest is split in time order (train, then validation, then test).
* creditcard.csv (or a .zip holding it): its 30 columns, malformed rows dropped (counted, not fatal),
  sorted by `Time` and split in time order: the first 80% of rows train (the last eighth of which
  validates), the last 20% test - Amazon's Fraud Dataset Benchmark's protocol for this dataset.
* `synthetic`: the i.i.d. test fixture of creditcard.csv's shape; no time, so a seeded stratified split.
  A test fixture only, never a quality claim.

Files written:

    xgboost/{train,validation,test}.csv   label first, no header (built-in XGBoost's CSV format)
    features/{train,validation}.csv       features only (Random Cut Forest's training CSV, and the
                                          batch-transform inputs used to compute thresholds)
    manifest.json                         counts, class ratios, malformed rows, feature names and
                                          spec version, sha256 of the data

Standard library only: the same code runs in the training Lambda and on a laptop.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contracts import features as feature_spec
from contracts.sagemaker_formats import CREDITCARD_FEATURE_SPEC_VERSION
from fraud_data.schema import COLUMNS, FEATURE_COUNT
from fraud_data.synthetic import generate_rows
from training import spec as model_spec

SPLITS = ("train", "validation", "test")
SIMULATED = "simulated"
SYNTHETIC = "synthetic"
XGBOOST_FILES = {split: f"xgboost/{split}.csv" for split in SPLITS}
FEATURE_FILES = {split: f"features/{split}.csv" for split in ("train", "validation")}
MANIFEST = "manifest.json"
MAX_MALFORMED_EXAMPLES = 5


@dataclass
class Record:
    label: int
    features: str  # the 30 validated feature tokens, comma-joined, exactly as read


def is_behavioural(manifest: dict) -> bool:
    """Whether prepared data holds the spec's behavioural features (else creditcard.csv's columns):
    what picks the XGBoost setting (training.spec.xgboost_setting) in the deployment and the twin."""
    return manifest["feature_spec_version"] != CREDITCARD_FEATURE_SPEC_VERSION


@dataclass
class ReadStats:
    rows_read: int = 0
    malformed: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, line_number: int, reason: str) -> None:
        self.malformed[reason] += 1
        if len(self.examples) < MAX_MALFORMED_EXAMPLES:
            self.examples.append(f"line {line_number}: {reason}")


def open_source_text(path: Path) -> io.TextIOBase:
    """A text stream over creditcard.csv, or over the first .csv member of a .zip (read, not extracted)."""
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        members = [
            m for m in archive.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")
        ]
        if not members:
            raise ValueError(f"{path.name}: the zip holds no .csv file")
        # Prefer the dataset's own name when the archive holds several CSVs.
        member = next((m for m in members if Path(m).name.lower() == "creditcard.csv"), members[0])
        return io.TextIOWrapper(archive.open(member), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_csv_records(lines: Iterable[str], stats: ReadStats) -> Iterator[Record]:
    """Validated records from creditcard.csv lines; a header row is skipped, bad rows are counted."""
    for line_number, row in enumerate(csv.reader(lines), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if line_number == 1 and [c.strip().strip('"') for c in row] == list(COLUMNS):
            continue
        stats.rows_read += 1
        record = _parse_row(row, line_number, stats)
        if record is not None:
            yield record


def synthetic_records(count: int, stats: ReadStats, *, seed: int = model_spec.SEED) -> Iterator[Record]:
    for row in generate_rows(count, seed=seed):
        stats.rows_read += 1
        yield Record(label=int(row[-1]), features=",".join(repr(v) for v in row[:-1]))


def _parse_row(row: list[str], line_number: int, stats: ReadStats) -> Record | None:
    if len(row) != len(COLUMNS):
        stats.reject(line_number, f"expected {len(COLUMNS)} columns, got {len(row)}")
        return None
    tokens = [cell.strip().strip('"').strip() for cell in row]
    try:
        values = [float(token) for token in tokens]
    except ValueError:
        stats.reject(line_number, "a value is not a number")
        return None
    if not all(math.isfinite(v) for v in values):
        stats.reject(line_number, "a value is NaN or infinite")
        return None
    if values[-1] not in (0.0, 1.0):
        stats.reject(line_number, "Class is not 0 or 1")
        return None
    return Record(label=int(values[-1]), features=",".join(tokens[:FEATURE_COUNT]))


def stratified_split(
    labels: list[int],
    *,
    seed: int = model_spec.SEED,
    fractions: tuple[float, float, float] = model_spec.SPLIT_FRACTIONS,
) -> dict[str, list[int]]:
    """Row indices per split: each class is shuffled (seeded) and cut by `fractions` on its own.

    Indices come back in their original order, so the files keep the source's (time) order.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError("fractions must be three positive numbers adding up to 1")
    rng = random.Random(seed)
    result: dict[str, list[int]] = {split: [] for split in SPLITS}
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        indices = by_class[label]
        rng.shuffle(indices)
        n_train = round(len(indices) * fractions[0])
        n_validation = round(len(indices) * fractions[1])
        # A rare class still gets at least one row in validation and test when it has three or more.
        if len(indices) >= 3:
            n_validation = max(n_validation, 1)
            n_train = min(n_train, len(indices) - n_validation - 1)
        result["train"].extend(indices[:n_train])
        result["validation"].extend(indices[n_train : n_train + n_validation])
        result["test"].extend(indices[n_train + n_validation :])
    return {split: sorted(indices) for split, indices in result.items()}


def time_ordered_split(count: int, fractions: tuple[float, float, float]) -> dict[str, list[int]]:
    """Row indices per split for rows already in time order: the first rows train, the last test."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError("fractions must be three positive numbers adding up to 1")
    n_train = round(count * fractions[0])
    n_validation = round(count * fractions[1])
    return {
        "train": list(range(n_train)),
        "validation": list(range(n_train, n_train + n_validation)),
        "test": list(range(n_train + n_validation, count)),
    }


def prepare(
    records: Iterable[Record],
    out_dir: Path,
    *,
    source_name: str,
    stats: ReadStats,
    seed: int = model_spec.SEED,
    fractions: tuple[float, float, float] = model_spec.SPLIT_FRACTIONS,
    time_ordered: bool = False,
    feature_names: tuple[str, ...] = COLUMNS[:FEATURE_COUNT],
    feature_spec_version: str = CREDITCARD_FEATURE_SPEC_VERSION,
    details: dict | None = None,
) -> dict:
    """Split `records` and write the files listed in the module docstring; returns the manifest.

    `time_ordered`: records are in time order and the split keeps it (train first, test last); else a
    seeded stratified split. Every split must hold both classes (training, thresholds, a test).
    """
    rows = list(records)
    if not rows:
        raise ValueError(f"{source_name}: no valid rows (malformed: {dict(stats.malformed)})")
    labels = [r.label for r in rows]
    if len(set(labels)) < 2:
        raise ValueError(f"{source_name}: both classes are needed to train, found only Class={labels[0]}")
    if time_ordered:
        splits = time_ordered_split(len(rows), fractions)
        for split, indices in splits.items():
            if len({labels[i] for i in indices}) < 2:
                raise ValueError(
                    f"{source_name}: the {split} split ({len(indices)} rows in time order) does not hold "
                    "both classes; use more data"
                )
    else:
        splits = stratified_split(labels, seed=seed, fractions=fractions)
    out_dir.mkdir(parents=True, exist_ok=True)
    file_hashes = {}
    for split, indices in splits.items():
        file_hashes[XGBOOST_FILES[split]] = _write(
            out_dir / XGBOOST_FILES[split], (f"{rows[i].label},{rows[i].features}\n" for i in indices)
        )
        if split in FEATURE_FILES:
            file_hashes[FEATURE_FILES[split]] = _write(
                out_dir / FEATURE_FILES[split], (f"{rows[i].features}\n" for i in indices)
            )
    combined = hashlib.sha256(
        "".join(f"{name}:{digest}\n" for name, digest in sorted(file_hashes.items())).encode()
    )
    manifest = {
        "source": source_name,
        "preparation_version": model_spec.PREPARATION_VERSION,
        "seed": seed,
        "fractions": list(fractions),
        "split": "time-ordered" if time_ordered else "stratified",
        "feature_count": len(feature_names),
        "feature_names": list(feature_names),
        "feature_spec_version": feature_spec_version,
        **(details or {}),
        "rows_read": stats.rows_read,
        "rows_valid": len(rows),
        "rows_malformed": sum(stats.malformed.values()),
        "malformed_reasons": dict(stats.malformed),
        "malformed_examples": stats.examples,
        "splits": {split: _class_counts([labels[i] for i in indices]) for split, indices in splits.items()},
        "files": file_hashes,
        "sha256": combined.hexdigest(),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def prepare_source(
    source: str | Path,
    out_dir: Path,
    *,
    synthetic_rows: int = 100_000,
    simulation: model_spec.SimulationSize | None = None,
) -> dict:
    """`source` is `simulated`, `synthetic` or a local path to creditcard.csv / a .zip holding it."""
    stats = ReadStats()
    if str(source) == SIMULATED:
        return prepare_simulated(out_dir, simulation or model_spec.SimulationSize())
    if str(source) == SYNTHETIC:
        records = synthetic_records(synthetic_rows, stats)
        return prepare(records, out_dir, source_name=f"synthetic ({synthetic_rows} rows)", stats=stats)
    path = Path(source)
    with open_source_text(path) as text:
        # Sorted by `Time` (stable: the file's order breaks ties), so the split is time-ordered even if
        # the file's rows are not.
        records = sorted(read_csv_records(text, stats), key=_time_of)
    return prepare(
        records,
        out_dir,
        source_name=path.name,
        stats=stats,
        fractions=model_spec.CREDITCARD_SPLIT_FRACTIONS,
        time_ordered=True,
    )


def _time_of(record: Record) -> float:
    return float(record.features.split(",", 1)[0])


def simulated_records(
    size: model_spec.SimulationSize, stats: ReadStats, names: tuple[str, ...] = feature_spec.MODEL_FEATURES
) -> tuple[list[Record], dict]:
    """The simulator's transactions with their offline features, in event order, warm-up left out."""
    # Imported here: the creditcard path and the local twin's tests need neither.
    from fraud_data.features import compute_features
    from fraud_data.simulator import simulate

    simulation = simulate(size.config())
    transactions = simulation.transactions
    columns = compute_features(transactions, names)
    first_full_window = transactions.timestamp[0] + feature_spec.RETENTION_MS if len(transactions) else 0
    records = []
    skipped = 0
    ordered = list(columns.values())
    for i, (timestamp, label) in enumerate(zip(transactions.timestamp, transactions.label, strict=True)):
        stats.rows_read += 1
        if timestamp < first_full_window:
            skipped += 1
            continue
        records.append(Record(label=label, features=",".join(repr(column[i]) for column in ordered)))
    details = {
        "simulation": size.as_dict(),
        "simulated_transactions": len(transactions),
        "simulated_frauds": simulation.stats.frauds,
        "warm_up_rows_left_out": skipped,
    }
    return records, details


def prepare_simulated(
    out_dir: Path, size: model_spec.SimulationSize, names: tuple[str, ...] = feature_spec.MODEL_FEATURES
) -> dict:
    """Simulate, compute the spec's features, split in time order and write the prepared files."""
    stats = ReadStats()
    records, details = simulated_records(size, stats, names)
    return prepare(
        records,
        out_dir,
        source_name=f"{SIMULATED} ({size.describe()})",
        stats=stats,
        seed=size.seed,
        fractions=model_spec.SIMULATED_SPLIT_FRACTIONS,
        time_ordered=True,
        feature_names=names,
        feature_spec_version=feature_spec.spec_version(model_features=names),
        details=details,
    )


def _class_counts(labels: list[int]) -> dict:
    positives = sum(labels)
    return {
        "rows": len(labels),
        "positives": positives,
        "negatives": len(labels) - positives,
        "positive_rate": round(positives / len(labels), 6) if labels else 0.0,
    }


def _write(path: Path, lines: Iterable[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("w", encoding="utf-8", newline="") as out:
        for line in lines:
            digest.update(line.encode())
            out.write(line)
    return digest.hexdigest()
