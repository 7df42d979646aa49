"""The model report (JSON + Markdown): test-split quality of both models at their thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from training.thresholds import confusion_at


def model_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    confusion = confusion_at(labels.tolist(), scores.tolist(), threshold)
    return {
        "pr_auc": round(float(average_precision_score(labels, scores)), 4),
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
        "threshold": round(threshold, 6),
        "precision": round(confusion.precision, 4),
        "recall": round(confusion.recall, 4),
        "f1": round(confusion.f1, 4),
        "confusion_matrix": {
            "true_negatives": confusion.true_negatives,
            "false_positives": confusion.false_positives,
            "false_negatives": confusion.false_negatives,
            "true_positives": confusion.true_positives,
        },
    }


def verdict_counts(
    labels: np.ndarray,
    fraud: np.ndarray,
    anomaly: np.ndarray,
    fraud_threshold: float,
    anomaly_threshold: float,
) -> dict:
    """The scoring Lambda's rule (docs/architecture.md, *Verdict*) applied to the test split."""
    is_fraud = fraud >= fraud_threshold
    is_suspicious = ~is_fraud & (anomaly >= anomaly_threshold)
    is_legit = ~is_fraud & ~is_suspicious
    return {
        name: {"transactions": int(mask.sum()), "actual_frauds": int(labels[mask].sum())}
        for name, mask in (("fraud", is_fraud), ("suspicious", is_suspicious), ("legit", is_legit))
    }


def write(report: dict, prefix: Path) -> tuple[Path, Path]:
    """Write `<prefix>.json` and `<prefix>.md`."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def markdown(report: dict) -> str:
    data, test = report["data"], report["data"]["splits"]["test"]
    lines = [
        "# Model report",
        "",
        f"Data source: **{data['source']}** ({data['rows_valid']:,} valid rows, "
        f"{data['rows_malformed']:,} malformed; prepared data sha256 `{data['sha256'][:16]}…`).",
        f"Test split: {test['rows']:,} transactions, {test['positives']:,} frauds "
        f"(positive rate {test['positive_rate']:.4%} — the PR-AUC of a random scorer).",
        "",
        f"Produced by `{report['command']}` (the local twin of the SageMaker training; "
        "see docs/training.md).",
        "",
        "| model | PR-AUC | ROC-AUC | threshold | precision | recall | F1 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, title in (("fraud", "XGBoost classifier (fraud)"), ("anomaly", report["anomaly_model"])):
        m = report["test"][key]
        lines.append(
            f"| {title} | {m['pr_auc']:.4f} | {m['roc_auc']:.4f} | {m['threshold']:.4g} | "
            f"{m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} |"
        )
    lines += ["", "Confusion matrices on the test split, at each model's threshold:", ""]
    for key, title in (("fraud", "XGBoost classifier"), ("anomaly", report["anomaly_model"])):
        c = report["test"][key]["confusion_matrix"]
        lines += [
            f"**{title}**",
            "",
            "| | predicted legit | predicted positive |",
            "| --- | --- | --- |",
            f"| actual legit | {c['true_negatives']:,} | {c['false_positives']:,} |",
            f"| actual fraud | {c['false_negatives']:,} | {c['true_positives']:,} |",
            "",
        ]
    lines += [
        "Verdicts the scoring Lambda would give the test split (fraud if the classifier's probability "
        "≥ its threshold, else suspicious if the anomaly score ≥ its threshold, else legit):",
        "",
        "| verdict | transactions | of which actual frauds |",
        "| --- | --- | --- |",
    ]
    for name, counts in report["test"]["verdicts"].items():
        lines.append(f"| {name} | {counts['transactions']:,} | {counts['actual_frauds']:,} |")
    lines += [
        "",
        "Thresholds: the classifier's is the best-F1 cut-off on the validation split; the anomaly "
        "model's is mean + 3·std of its scores on the training split.",
        "",
    ]
    return "\n".join(lines)
