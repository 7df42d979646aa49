"""The Handbook-protocol model report: our rows beside the published ones.

    report = run_protocol(None, seed=42)          # simulate, compute features, train, evaluate
    write_report(report, Path("docs/model-report"))  # docs/model-report.md and .json

or `python -m training.handbook_report --seed 42 [--also-seeds 7 11] [--csv PATH]`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from contracts import features as spec
from fraud_data import features as offline
from fraud_data import simulator
from fraud_data.transactions import COLUMNS, read_csv
from training import handbook_ceiling, handbook_markdown
from training import handbook_models as hm
from training import handbook_protocol as hp

# The Handbook's published rows on its own simulated dataset (seed of its notebook, 2018-04-01 start).
PUBLISHED: list[dict] = [
    {
        "name": "XGBoost (Handbook)",
        "auc_roc": 0.862,
        "average_precision": 0.639,
        "card_precision_at_100": 0.273,
        "source": "ch. 3 Baseline modeling: XGBClassifier defaults, one split (tested 2018-08-08..14)",
    },
    {
        "name": "XGBoost, tuned (Handbook)",
        "auc_roc": 0.869,
        "average_precision": 0.687,
        "card_precision_at_100": 0.303,
        # The Handbook's summary takes each metric's best-on-validation setting separately.
        "source": "ch. 5 Model selection: each metric at its own validation-best setting (so up to three "
        "models); mean of 4 prequential test weeks (training weeks starting 2018-07-25 to 2018-08-15), "
        "not the single split",
    },
    {
        "name": "Random forest (Handbook)",
        "auc_roc": 0.867,
        "average_precision": 0.658,
        "card_precision_at_100": 0.287,
        "source": "ch. 3 Baseline modeling: RandomForestClassifier defaults, one split",
    },
    {
        "name": "Logistic regression (Handbook)",
        "auc_roc": 0.871,
        "average_precision": 0.606,
        "card_precision_at_100": 0.291,
        "source": "ch. 3 Baseline modeling: LogisticRegression defaults, one split",
    },
    {
        "name": "Isolation Forest (Handbook)",
        "auc_roc": 0.808,
        "average_precision": 0.164,
        "card_precision_at_100": 0.19,
        "source": "ch. 7 Autoencoders: 10 trees, scored on the validation week 2018-07-25..31 "
        "(trained on 2018-07-11..17), not the test week",
    },
]
PUBLISHED_BASELINE = PUBLISHED[0]

# Issue 11 §4.
REPRODUCTION_TOLERANCE = {"auc_roc": 0.02, "average_precision": 0.03, "card_precision_at_100": 0.05}
PRODUCTION_MIN_AP = 0.72  # on the default seed
PRODUCTION_MIN_GAIN = {"average_precision": 0.05, "card_precision_at_100": 0.02}  # on every seed
DEFAULT_SEED = 42

REPRODUCTION, TUNED_BASELINE, PRODUCTION = hm.REPRODUCTION, hm.TUNED_BASELINE, hm.PRODUCTION
ANOMALY, ANOMALY_BASELINE = hm.ANOMALY, hm.ANOMALY_BASELINE


# --- data --------------------------------------------------------------------------------------------


def _transactions_frame(transactions) -> pd.DataFrame:
    """The simulator's column table as a DataFrame."""
    return pd.DataFrame({c: getattr(transactions, c) for c in COLUMNS})


def load_dataset(
    transactions_csv: Path | None, *, seed: int, simulation: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Transactions (simulated when no CSV is given) and every feature of the spec, computed offline
    by `fraud_data.features` — the same code that prepares the deployed models' training data."""
    if transactions_csv is None:
        config = simulator.SimulationConfig(seed=seed, **(simulation or {}))
        table = simulator.simulate(config).transactions
        source = {"kind": "simulated", "seed": seed}
        source |= {k: getattr(config, k) for k in ("customers", "terminals", "days", "start")}
    else:
        table = read_csv(transactions_csv)
        source = {"kind": "csv", "path": str(transactions_csv), "seed": seed}
    columns = offline.compute_features(table, spec.ALL_FEATURES)
    features = pd.DataFrame({"transaction_id": table.transaction_id, **columns})
    return _transactions_frame(table), features, source


# --- the protocol --------------------------------------------------------------------------------------


def _row(name: str, model: hm.Model | None, metrics: dict, **extra) -> dict:
    return {
        "name": name,
        "features": list(model.features) if model else list(spec.BASELINE_FEATURES),
        "auc_roc": round(metrics["auc_roc"], 4),
        "average_precision": round(metrics["average_precision"], 4),
        "card_precision_at_100": round(metrics["card_precision_at_100"], 4),
        "published": False,
        **extra,
    }


def production_features(
    selected_groups: Sequence[str], groups: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """The production model's inputs: the spec's MODEL_FEATURES once chosen, else this run's
    validation choice (baseline + the kept groups)."""
    if spec.MODEL_EXTRA_FEATURES:
        return spec.MODEL_FEATURES
    return spec.BASELINE_FEATURES + tuple(n for g in selected_groups for n in groups[g])


def evaluate_rows(
    data: hm.ProtocolData,
    period: hp.Period,
    *,
    validation_folds: int = 2,
    candidates: Sequence[dict] | None = None,
    bootstrap_resamples: int = 200,
) -> dict:
    """Every one of our rows on one dataset: the ablation, the tuning, the test metrics, the bootstrap."""
    folds = hp.validation_periods(period, validation_folds)
    baseline_candidates = list(candidates) if candidates is not None else hm.tuning_candidates()
    production_candidates = (
        list(candidates) if candidates is not None else hm.tuning_candidates(hm.PRODUCTION_GRID)
    )
    groups = hm.extra_feature_groups()
    ablation = hm.ablation(data, period, folds, groups)
    chosen = production_features(ablation.selected, groups)

    tuned_baseline = hm.tune(data, spec.BASELINE_FEATURES, folds, baseline_candidates)
    tuned_production = hm.tune(data, chosen, folds, production_candidates)
    models = [
        hm.Model(REPRODUCTION, "xgboost", spec.BASELINE_FEATURES, hm.HANDBOOK_XGBOOST),
        hm.Model(TUNED_BASELINE, "xgboost", spec.BASELINE_FEATURES, tuned_baseline.best),
        hm.Model(PRODUCTION, "xgboost", chosen, tuned_production.best),
        hm.Model(ANOMALY, "isolation_forest", chosen),
        hm.Model(ANOMALY_BASELINE, "isolation_forest", spec.BASELINE_FEATURES),
    ]
    results = [hm.run(model, data, period) for model in models]
    split = data.split(period)
    t = split.test
    intervals = hp.bootstrap_intervals(
        data.day[t],
        data.card[t],
        data.label[t],
        {r.model.name: r.scores for r in results},
        reference=REPRODUCTION,
        resamples=bootstrap_resamples,
    )
    rows = [
        _row(
            r.model.name,
            r.model,
            r.metrics.headline(),
            params=r.model.params,
            card_precision_per_day=[round(v, 4) for v in r.metrics.card_precision_per_day],
            fit_seconds=round(r.seconds, 1),
        )
        for r in results
    ]
    return {
        "rows": rows,
        "bootstrap": {"resamples": bootstrap_resamples, "confidence": 0.95, "unit": "card", **intervals},
        "ablation": {
            "rows": ablation.rows,
            "selected_groups": ablation.selected,
            "groups": groups,
            # Whether the production row used contracts' MODEL_FEATURES or this run's own selection.
            "production_features_from": "contracts MODEL_FEATURES"
            if spec.MODEL_EXTRA_FEATURES
            else "this run",
        },
        "tuning": {
            "baseline": {"best": tuned_baseline.best, "table": tuned_baseline.table},
            "production": {"best": tuned_production.best, "table": tuned_production.table},
        },
        "validation_periods": [f.calendar(data.start) for f in folds],
        "test_set": {
            "transactions": int(len(t)),
            "frauds": int(data.label[t].sum()),
            "fraud_rate": float(data.label[t].mean()) if len(t) else 0.0,
            "cards": int(len(np.unique(data.card[t]))),
            "removed_known_compromised_per_day": split.removed_known_cards,
        },
        "train_set": {"transactions": int(len(split.train)), "frauds": int(data.label[split.train].sum())},
    }


def goals(rows: list[dict], *, seed: int, ceiling: dict | None = None) -> dict:
    """Issue 11's goals, checked on one seed's rows. With the seed's oracle `ceiling`
    (`handbook_ceiling`), each production goal also says whether any model could reach it on this
    test week: the AP goal if the ceiling's AP reaches it, a gain goal if ceiling − baseline does
    (for CP@100, the higher of the ceiling and its busiest-cards-first variant)."""
    by_name = {r["name"]: r for r in rows}
    ours, base, prod = by_name[REPRODUCTION], by_name[REPRODUCTION], by_name[PRODUCTION]
    tuned = by_name.get(TUNED_BASELINE)
    reproduction = {
        m: {
            "ours": ours[m],
            "published": PUBLISHED_BASELINE[m],
            "difference": round(ours[m] - PUBLISHED_BASELINE[m], 4),
            "tolerance": tol,
            "holds": abs(ours[m] - PUBLISHED_BASELINE[m]) <= tol,
        }
        for m, tol in REPRODUCTION_TOLERANCE.items()
    }
    gains = {
        m: {
            "gain": round(prod[m] - base[m], 4),
            "required": need,
            "holds": prod[m] - base[m] >= need,
        }
        for m, need in PRODUCTION_MIN_GAIN.items()
    }
    if ceiling is not None:
        for m, check in gains.items():
            # CP@100: the higher of the ceiling and its busiest-cards-first variant, so that a goal is
            # called unreachable only if that lever cannot reach it either.
            reach = max(ceiling[m], ceiling.get(f"{m}_by_card_activity", ceiling[m]))
            room = reach - base[m]
            check |= {"max_gain": round(room, 4), "reachable": room >= check["required"]}
    result = {"reproduction": reproduction, "production_gain_over_baseline": gains}
    if tuned is not None:
        # The other reading of "our own baseline row": the baseline features with the same tuning
        # (its search space keeps 7 training days; the production row's chose 42), so the gain is
        # what our features (and the longer window) add beyond tuning.
        result["production_gain_over_tuned_baseline"] = {
            m: {
                "gain": round(prod[m] - tuned[m], 4),
                "required": need,
                "holds": prod[m] - tuned[m] >= need,
            }
            for m, need in PRODUCTION_MIN_GAIN.items()
        }
    if seed == DEFAULT_SEED:
        ap = prod["average_precision"]
        result["production_ap_on_default_seed"] = {
            "ours": ap,
            "required": PRODUCTION_MIN_AP,
            "margin": round(ap - PRODUCTION_MIN_AP, 4),
            "holds": ap >= PRODUCTION_MIN_AP,
        }
        if ceiling is not None:
            result["production_ap_on_default_seed"] |= {
                "ceiling": ceiling["average_precision"],
                "reachable": ceiling["average_precision"] >= PRODUCTION_MIN_AP,
            }
    return result


def run_protocol(
    transactions_csv: Path | None,
    *,
    seed: int,
    simulation: dict | None = None,
    train_offset_days: int = hp.TRAIN_OFFSET_DAYS,
    validation_folds: int = 2,
    candidates: Sequence[dict] | None = None,
    bootstrap_resamples: int = 200,
    command: str | None = None,
    ceiling_draws: int = handbook_ceiling.DEFAULT_DRAWS,
) -> dict:
    """Simulate (or read) the transactions, compute the features, train and evaluate every row,
    and the test week's oracle ceiling (`handbook_ceiling`: what any model could reach).

    `simulation`: SimulationConfig overrides (customers, terminals, days, start) for reduced runs;
    `seed` is the dataset's seed — never a tuning knob. Returns the report dict `write_report` takes.
    """
    began = time.perf_counter()
    transactions, features, source = load_dataset(transactions_csv, seed=seed, simulation=simulation)
    prepared = time.perf_counter()
    data = hm.ProtocolData.from_frames(transactions, features)
    period = hp.Period(train_start_day=train_offset_days)
    evaluation = evaluate_rows(
        data,
        period,
        validation_folds=validation_folds,
        candidates=candidates,
        bootstrap_resamples=bootstrap_resamples,
    )
    rows = evaluation.pop("rows")
    ceiling = handbook_ceiling.protocol_ceiling(transactions, period, draws=ceiling_draws).as_dict()
    scenarios = np.bincount(data.scenario.astype(int), minlength=4).tolist()
    return {
        "handbook_protocol": rows
        + [{**p, "features": list(spec.BASELINE_FEATURES), "published": True} for p in PUBLISHED],
        "protocol": {
            "dataset_start": data.start.isoformat(),
            **period.calendar(data.start),
            "train_offset_days": train_offset_days,
            "delay_days": period.delta_delay,
            "top_k": hp.TOP_K,
        },
        "dataset": {
            **source,
            "transactions": int(len(data.label)),
            "frauds": int(data.label.sum()),
            "frauds_by_scenario": {"S1": scenarios[1], "S2": scenarios[2], "S3": scenarios[3]},
            "days_present": int(data.day.max()) + 1,
        },
        "feature_spec_version": spec.SPEC_VERSION,
        "model_features": list(spec.MODEL_FEATURES),
        "goals": goals(rows, seed=seed, ceiling=ceiling),
        "ceiling": ceiling,
        **evaluation,
        "command": command or f"python -m training.handbook_report --seed {seed}",
        "wall_time_seconds": round(time.perf_counter() - began, 1),
        "data_preparation_seconds": round(prepared - began, 1),
    }


def with_other_seeds(main: dict, others: Sequence[dict]) -> dict:
    """The default seed's report plus, per other seed, our rows and the goals on that dataset."""
    summaries = [
        {
            "seed": other["dataset"]["seed"],
            "dataset": other["dataset"],
            "rows": [r for r in other["handbook_protocol"] if not r["published"]],
            "goals": other["goals"],
            "ceiling": other.get("ceiling"),
            "selected_groups": other["ablation"]["selected_groups"],
            "production_features_from": other["ablation"].get("production_features_from", "this run"),
            "bootstrap": other["bootstrap"],
            "command": other["command"],
            "wall_time_seconds": other["wall_time_seconds"],
        }
        for other in others
    ]
    return {**main, "other_seeds": summaries}


# --- writing -------------------------------------------------------------------------------------------


def write_report(report: dict, prefix: Path) -> list[Path]:
    """`<prefix>.json` (the whole report) and `<prefix>.md` (for people); returns both paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    md_path.write_text(handbook_markdown.markdown(report))
    return [md_path, json_path]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- command line --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.handbook_report", description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the simulated dataset's seed")
    parser.add_argument("--also-seeds", type=int, nargs="*", default=[], help="more datasets to report")
    parser.add_argument("--csv", type=Path, help="a simulator CSV instead of simulating")
    parser.add_argument("--report", type=Path, default=Path("docs/model-report"), help="output prefix")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="no run: merge reports written earlier (the first is the main one, the others become "
        "'other seeds') into --report",
    )
    args = parser.parse_args(argv)
    command = "python -m training.handbook_report " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.combine:
        main_report, *others = (json.loads(path.read_text()) for path in args.combine)
        combined = with_other_seeds(main_report, others) | {"combined_by": command}
        for path in write_report(combined, args.report):
            print(f"wrote {path}")
        return 0
    main_report = run_protocol(args.csv, seed=args.seed, bootstrap_resamples=args.bootstrap, command=command)
    _progress(main_report)
    others = []
    for seed in args.also_seeds:
        other = run_protocol(
            None,
            seed=seed,
            bootstrap_resamples=args.bootstrap,
            command=f"python -m training.handbook_report --seed {seed}",
        )
        _progress(other)
        others.append(other)
    for path in write_report(with_other_seeds(main_report, others), args.report):
        print(f"wrote {path}")
    return 0


def _progress(report: dict) -> None:
    print(f"seed {report['dataset']['seed']}: {report['wall_time_seconds']:.0f} s", file=sys.stderr)
    for r in report["handbook_protocol"]:
        if not r["published"]:
            print(
                f"  {r['name']}: AUC {r['auc_roc']:.3f} AP {r['average_precision']:.3f} "
                f"CP@100 {r['card_precision_at_100']:.3f}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    raise SystemExit(main())
