"""What any model could reach on the Handbook protocol's test week: an oracle ceiling, no model trained.

Some frauds carry no signal a model can see at scoring time. In scenario 2 (S2) every transaction at
a compromised terminal is a fraud, but the transaction itself — amount, time, card, terminal — is a
genuine customer's genuine purchase; the only trace of the compromise is the terminal's fraud
labels, and those arrive `hp.DELTA_DELAY` (7) days late. Until the streak's first fraud is 7 days old
no label of the streak is known, so its frauds look exactly like genuine transactions.

The rule, from the data alone (the CSV's `timestamp`, `terminal_id`, `label`, `scenario` columns):

* a terminal's S2 frauds (label 1, scenario 2) form *streaks*: a fraud starts a new streak when its
  terminal had no S2 fraud in the `simulator.S2_DAYS` (28) days before it — the simulator compromises
  a terminal for 28 days, so frauds of one compromise (or of overlapping ones) are always less than
  28 days apart;
* the streak starts at its first fraud's timestamp: the first fraud whose label can become known
  (the simulator's compromise day can be earlier, when the terminal had no transaction yet, but no
  label exists before the first fraud);
* an S2 fraud is **invisible** when it is less than the feedback delay after its streak's start
  (`timestamp - start < delay`; at exactly 7 days the first label is known, as the terminal-risk
  features' window (t - 7 - n days, t - 7 days] includes it), unless its amount exceeds scenario 1's
  threshold (`simulator.S1_AMOUNT`): scenario 2 relabels such a transaction, but its amount gives it
  away.

The oracle ranks every visible fraud above everything else and scores the invisible frauds and the
genuine transactions alike, uniformly at random (any model that cannot tell them apart does, in
expectation, no better). Its metrics are the *mean over `draws` independent random draws* (Monte
Carlo, not the exact expectation; the standard deviation over the draws is reported with them), each
computed by `handbook_protocol.evaluate` on the protocol's own test set (`train_test_split`, with its
removal of the cards known compromised). CP@100 counts cards, and a card that pays more often is
likelier to meet a compromised terminal: `ceiling_on` also reports CP@100 with the indistinguishable
cards ranked busiest first, and with every fraud known (the metric's own maximum).

    python -m training.handbook_ceiling [--report docs/model-report] [--draws 50]

adds a `ceiling` per seed to a report written earlier (no model retrained: each seed's dataset is
simulated again and checked against the report's counts); `handbook_report.run_protocol` computes it
in every new run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_data import simulator
from training import handbook_protocol as hp

DEFAULT_DRAWS = 50
DRAW_SEED = 0
RULE = (
    f"S2 frauds less than {hp.DELTA_DELAY} days (the feedback delay) after the first S2 fraud of their "
    f"terminal's streak (a streak: S2 frauds at one terminal less than {simulator.S2_DAYS} days apart), "
    f"amount <= {simulator.S1_AMOUNT:g}"
)
METRICS = hp.METRIC_NAMES


def s2_streak_age_days(
    timestamp_ms: np.ndarray, terminal: np.ndarray, label: np.ndarray, scenario: np.ndarray
) -> np.ndarray:
    """Per transaction, the days since the start of its terminal's S2 streak (NaN if not an S2 fraud)."""
    timestamp_ms = np.asarray(timestamp_ms, dtype=np.int64)
    rows = np.flatnonzero((np.asarray(label) == 1) & (np.asarray(scenario) == 2))
    age = np.full(len(timestamp_ms), np.nan)
    if len(rows) == 0:
        return age
    terminal_code = pd.factorize(np.asarray(terminal)[rows])[0]
    order = np.lexsort((timestamp_ms[rows], terminal_code))  # by terminal, then time
    rows, terminal_code = rows[order], terminal_code[order]
    stamps = timestamp_ms[rows]
    new_streak = np.ones(len(rows), dtype=bool)
    same_terminal = terminal_code[1:] == terminal_code[:-1]
    new_streak[1:] = ~same_terminal | (np.diff(stamps) >= simulator.S2_DAYS * hp.MS_PER_DAY)
    # Each row's streak start: the timestamp at the latest new-streak position up to it.
    start_position = np.maximum.accumulate(np.where(new_streak, np.arange(len(rows)), 0))
    age[rows] = (stamps - stamps[start_position]) / hp.MS_PER_DAY
    return age


def invisible_frauds(
    timestamp_ms: np.ndarray,
    terminal: np.ndarray,
    label: np.ndarray,
    scenario: np.ndarray,
    amount: np.ndarray,
    delay_days: int = hp.DELTA_DELAY,
) -> np.ndarray:
    """The frauds no model can see (module docstring: the rule), as a boolean mask."""
    age = s2_streak_age_days(timestamp_ms, terminal, label, scenario)
    with np.errstate(invalid="ignore"):
        early = age < delay_days  # NaN (not an S2 fraud) compares False
    return early & (np.asarray(amount, dtype=np.float64) <= simulator.S1_AMOUNT)


def oracle_scores(label: np.ndarray, invisible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Visible frauds 2.0, above every other score; invisible frauds and genuine transactions U[0, 1)."""
    visible_fraud = (np.asarray(label) == 1) & ~np.asarray(invisible, dtype=bool)
    return np.where(visible_fraud, 2.0, rng.random(len(label)))


@dataclass(frozen=True)
class Ceiling:
    test_frauds: int
    invisible_frauds: int
    invisible_share: float  # of the test frauds
    auc_roc: float  # mean over the draws
    average_precision: float
    card_precision_at_100: float
    std: dict[str, float]  # standard deviation over the draws, per metric
    # Two CP@100 figures around the ceiling (AP and AUC would be 1 with every fraud known):
    card_precision_at_100_all_frauds_visible: float  # every fraud ranked first: the metric's own maximum
    card_precision_at_100_by_card_activity: float  # the indistinguishable ranked busiest card-day first
    draws: int
    draw_seed: int
    rule: str = RULE
    method: str = "mean over independent random draws of the invisible frauds' and genuine scores"

    def as_dict(self) -> dict:
        d = asdict(self)
        keys = ("card_precision_at_100_all_frauds_visible", "card_precision_at_100_by_card_activity")
        for key in ("invisible_share", *METRICS, *keys):
            d[key] = round(d[key], 4)
        d["std"] = {k: round(v, 4) for k, v in self.std.items()}
        return d


def ceiling_on(
    day: np.ndarray,
    card: np.ndarray,
    label: np.ndarray,
    invisible: np.ndarray,
    *,
    draws: int = DEFAULT_DRAWS,
    seed: int = DRAW_SEED,
) -> Ceiling:
    """The oracle's metrics on one set of transactions (already the test set), by `hp.evaluate`.

    Also two CP@100 references on the same set, by `hp.card_precision_at_k`:
    * every fraud ranked first, invisible ones included — the metric's own maximum (below 1 on days
      with fewer than 100 compromised cards);
    * the invisible frauds' and genuine transactions ranked by their card's number of transactions
      that day (ties at random): a card that pays more often is likelier to meet a compromised
      terminal, the one lever a model has on frauds it cannot see. Counted over the whole day, which a
      model scoring in real time cannot know yet, so this is generous to that lever.
    """
    if draws < 1:
        raise ValueError("draws must be at least 1")
    label = np.asarray(label).astype(np.int8)
    invisible = np.asarray(invisible, dtype=bool)
    if np.any(invisible & (label != 1)):
        raise ValueError("only frauds can be invisible")
    rng = np.random.default_rng(seed)
    values, by_activity = [], []
    _, card_day, per_card_day = np.unique(
        np.stack([np.asarray(day), np.asarray(card)]), axis=1, return_inverse=True, return_counts=True
    )
    activity = per_card_day[card_day.ravel()]
    for _ in range(draws):
        scores = oracle_scores(label, invisible, rng)
        values.append(list(hp.evaluate(day, card, label, scores).headline().values()))
        # Visible frauds stay first (above any count); the rest by count, the draw breaking ties.
        busy = np.where(scores > 1, np.inf, activity + scores)
        by_activity.append(hp.card_precision_at_k(day, card, label, busy).mean)
    values = np.array(values)
    everything = hp.card_precision_at_k(day, card, label, label.astype(np.float64)).mean
    frauds = int(label.sum())
    hidden = int(invisible.sum())
    mean, std = values.mean(axis=0), values.std(axis=0)
    return Ceiling(
        test_frauds=frauds,
        invisible_frauds=hidden,
        invisible_share=hidden / frauds if frauds else float("nan"),
        **{m: float(mean[i]) for i, m in enumerate(METRICS)},
        std={m: float(std[i]) for i, m in enumerate(METRICS)},
        card_precision_at_100_all_frauds_visible=float(everything),
        card_precision_at_100_by_card_activity=float(np.mean(by_activity)),
        draws=draws,
        draw_seed=seed,
    )


def protocol_ceiling(
    transactions: pd.DataFrame, period: hp.Period | None = None, *, draws: int = DEFAULT_DRAWS
) -> Ceiling:
    """The ceiling on the protocol's test set of `transactions` (the simulator's columns).

    Rows are ordered and cards coded exactly as `handbook_models.ProtocolData.from_frames` does
    (by timestamp then transaction id; cards factorized in that order), so CP@100's tie-break by card
    code is the one our models' rows get.
    """
    period = period or hp.Period()
    tx = transactions.sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True)
    stamps = tx["timestamp"].to_numpy(np.int64)
    start = hp.dataset_start(stamps)
    day = hp.day_index(stamps, start)
    if day.max() < period.end_day - 1:
        raise ValueError(f"the dataset ends on day {day.max()}; the protocol needs day {period.end_day - 1}")
    card = pd.factorize(tx["card_id"])[0]
    label = tx["label"].to_numpy(np.int8)
    invisible = invisible_frauds(
        stamps, tx["terminal_id"].to_numpy(), label, tx["scenario"].to_numpy(), tx["amount"].to_numpy()
    )
    t = hp.train_test_split(day, card, label, period).test
    return ceiling_on(day[t], card[t], label[t], invisible[t], draws=draws)


# --- adding the ceiling to a report written earlier (no model is retrained) ----------------------------


def _transactions_of(dataset: dict) -> pd.DataFrame:
    """The report's dataset again: re-simulated from its recorded configuration (the seed is its
    identity), or read from its CSV."""
    from fraud_data.transactions import COLUMNS, read_csv

    if dataset["kind"] == "simulated":
        keys = ("customers", "terminals", "days", "start")
        config = simulator.SimulationConfig(seed=dataset["seed"], **{k: dataset[k] for k in keys})
        table = simulator.simulate(config).transactions
    else:
        table = read_csv(Path(dataset["path"]))
    tx = pd.DataFrame({c: getattr(table, c) for c in COLUMNS})
    if len(tx) != dataset["transactions"] or int(tx["label"].sum()) != dataset["frauds"]:
        raise ValueError(
            f"seed {dataset['seed']}: the data give {len(tx)} transactions / {int(tx['label'].sum())} "
            f"frauds, the report {dataset['transactions']} / {dataset['frauds']}: not the same dataset"
        )
    return tx


def add_ceiling(report: dict, *, draws: int = DEFAULT_DRAWS, command: str = "") -> dict:
    """`report` (main seed and its `other_seeds`) with a `ceiling` per seed and the goals re-checked
    with it; the models' rows are left as they are."""
    from training import handbook_report as hr

    began = time.perf_counter()
    period = hp.Period(train_start_day=report["protocol"]["train_offset_days"])

    def one(dataset: dict, rows: list[dict], expected_test_frauds: int | None) -> tuple[dict, dict]:
        tick = time.perf_counter()
        found = protocol_ceiling(_transactions_of(dataset), period, draws=draws).as_dict()
        if expected_test_frauds is not None and found["test_frauds"] != expected_test_frauds:
            raise ValueError(f"test frauds {found['test_frauds']} != the report's {expected_test_frauds}")
        found["seconds"] = round(time.perf_counter() - tick, 1)
        ours = [r for r in rows if not r["published"]]
        return found, hr.goals(ours, seed=dataset["seed"], ceiling=found)

    out = dict(report)
    out["ceiling"], out["goals"] = one(
        report["dataset"], report["handbook_protocol"], report["test_set"]["frauds"]
    )
    out["other_seeds"] = []
    for other in report.get("other_seeds", []):
        ceiling, goals = one(other["dataset"], other["rows"], None)
        out["other_seeds"].append({**other, "ceiling": ceiling, "goals": goals})
    out["ceiling_added_by"] = {
        "command": command,
        "wall_time_seconds": round(time.perf_counter() - began, 1),
    }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.handbook_ceiling",
        description="Add the oracle ceiling to a model report written earlier (no model is retrained).",
    )
    parser.add_argument("--report", type=Path, default=Path("docs/model-report"), help="report prefix")
    parser.add_argument("--draws", type=int, default=DEFAULT_DRAWS, help="random draws per seed")
    args = parser.parse_args(argv)
    from training import handbook_report as hr

    command = "python -m training.handbook_ceiling " + shlex.join(sys.argv[1:] if argv is None else argv)
    report = json.loads(args.report.with_suffix(".json").read_text())
    updated = add_ceiling(report, draws=args.draws, command=command)
    for seed_report in [updated, *updated["other_seeds"]]:
        c, seed = seed_report["ceiling"], seed_report["dataset"]["seed"]
        print(
            f"seed {seed}: invisible {c['invisible_frauds']}/{c['test_frauds']} "
            f"({c['invisible_share']:.1%}); "
            f"ceiling AUC {c['auc_roc']:.3f} AP {c['average_precision']:.3f} "
            f"CP@100 {c['card_precision_at_100']:.3f}",
            file=sys.stderr,
        )
    for path in hr.write_report(updated, args.report):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
