"""Our models on the Handbook's protocol: data alignment, feature groups, tuning, and a reduced-size
end-to-end run on simulated data that must clearly beat random on the held-out week."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from contracts import features as spec
from training import handbook_models as hm
from training import handbook_protocol as hp
from training import handbook_report as hr

START_MS = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp()) * 1000


def _frames(n_days=30, per_day=40, seed=0):
    """Transactions whose fraud depends on one feature column, and that column (plus the others)."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    stamps = START_MS + np.sort(rng.integers(0, n_days * hp.MS_PER_DAY, n))
    signal = rng.random(n)
    label = (signal + rng.random(n) * 0.3 > 1.0).astype(int)
    ids = [f"t{i:05d}" for i in range(n)]
    tx = pd.DataFrame(
        {
            "transaction_id": ids,
            "timestamp": stamps,
            "card_id": [f"card-{c}" for c in rng.integers(0, 60, n)],
            "terminal_id": "term-0",
            "amount": 10.0,
            "label": label,
            "scenario": label,
        }
    )
    feats = pd.DataFrame({"transaction_id": ids})
    for name in spec.ALL_FEATURES:
        feats[name] = rng.random(n)
    feats["TX_AMOUNT"] = signal
    return tx, feats


def test_protocol_data_joins_on_transaction_id_and_orders_by_time():
    tx, feats = _frames()
    shuffled = tx.sample(frac=1.0, random_state=1)
    data = hm.ProtocolData.from_frames(shuffled, feats.iloc[::-1])
    assert data.start.isoformat() == "2018-04-01"
    assert np.all(np.diff(data.day) >= 0)
    assert data.day.max() == 29
    # Row i of the matrix is still the feature row of the transaction at that position.
    ordered = tx.sort_values("timestamp", kind="stable")
    expected = feats.set_index("transaction_id").loc[ordered["transaction_id"], "TX_AMOUNT"].to_numpy()
    got = data.matrix(np.arange(len(tx)), ["TX_AMOUNT"])[:, 0]
    assert np.allclose(got, expected.astype(np.float32))
    assert data.label.tolist() == ordered["label"].tolist()
    assert data.card.dtype.kind == "i"  # card ids factorized for the metrics


def test_protocol_data_refuses_missing_features_and_a_too_short_dataset():
    tx, feats = _frames()
    with pytest.raises(ValueError, match="features cover"):
        hm.ProtocolData.from_frames(tx, feats.iloc[:-5])
    data = hm.ProtocolData.from_frames(tx, feats)
    with pytest.raises(ValueError, match="the protocol needs day 135"):
        data.split(hp.Period())


def test_extra_feature_groups_cover_every_extra_once():
    groups = hm.extra_feature_groups()
    flat = [n for names in groups.values() for n in names]
    assert sorted(flat) == sorted(spec.EXTRA_FEATURES)
    # The two windows of one idea are kept or dropped together.
    assert {"CUSTOMER_ID_AMOUNT_TO_AVG_7DAY_WINDOW", "CUSTOMER_ID_AMOUNT_TO_AVG_30DAY_WINDOW"} <= set(
        groups["card amount_to_mean"]
    )
    # So are the four views of a terminal's known frauds, and nothing else joins them.
    assert groups["terminal fraud history"] == tuple(
        f"TERMINAL_ID_{what}_30DAY_WINDOW"
        for what in (
            "NB_FRAUD",
            "DAYS_SINCE_FIRST_FRAUD",
            "DAYS_SINCE_LAST_FRAUD",
            "RISK_SINCE_FIRST_FRAUD",
        )
    )


def test_tuning_candidates_are_the_grid_with_the_fixed_settings():
    candidates = hm.tuning_candidates(
        {"max_depth": [2, 3], "eta_rounds": [(0.1, 10)], "min_child_weight": [1, 4]}
    )
    assert len(candidates) == 4
    assert {(c["max_depth"], c["min_child_weight"]) for c in candidates} == {(2, 1), (2, 4), (3, 1), (3, 4)}
    assert all(c["num_round"] == 10 and c["tree_method"] == "hist" for c in candidates)
    assert {c["train_days"] for c in candidates} == {7}
    assert {c["train_days"] for c in hm.tuning_candidates(hm.PRODUCTION_GRID)} == {7, 21, 42}


def test_a_longer_training_window_ends_at_the_delay_and_keeps_the_same_test_set():
    tx, feats = _frames(n_days=30, per_day=40)
    data = hm.ProtocolData.from_frames(tx, feats)
    period = hp.Period(train_start_day=16, delta_train=4, delta_delay=2, delta_test=4)
    split = data.split(period)
    assert np.array_equal(hm.training_rows(data, period, split, 4), split.train)
    longer = hm.training_rows(data, period, split, 10)
    assert set(data.day[longer].tolist()) == set(range(10, 20))
    assert set(split.train.tolist()) < set(longer.tolist())
    model = hm.Model("m", "xgboost", ("TX_AMOUNT",), hm.TUNING_FIXED | {"num_round": 5, "train_days": 10})
    assert model.train_days == 10
    result = hm.run(model, data, period)
    assert len(result.scores) == len(split.test)


def test_tune_prefers_the_candidate_that_validates_better():
    tx, feats = _frames(n_days=30, per_day=60)
    data = hm.ProtocolData.from_frames(tx, feats)
    test_period = hp.Period(train_start_day=16, delta_train=4, delta_delay=2, delta_test=4)
    folds = hp.validation_periods(test_period, folds=1)
    # A stump of one round cannot use the signal as well as 30 rounds of depth 3.
    weak = hm.TUNING_FIXED | {"max_depth": 1, "eta": 0.01, "num_round": 1, "min_child_weight": 1}
    strong = hm.TUNING_FIXED | {"max_depth": 3, "eta": 0.3, "num_round": 30, "min_child_weight": 1}
    tuning = hm.tune(data, ["TX_AMOUNT", "TX_DURING_NIGHT"], folds, [weak, strong])
    assert tuning.best == strong
    assert [row["params"] for row in tuning.table] == [weak, strong]


def test_isolation_forest_scores_outliers_higher():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 3))
    forest = hm.fit_isolation_forest(train)
    normal, outlier = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) + 8
    assert (-forest.score_samples(outlier)).min() > (-forest.score_samples(normal)).max()


# --- reduced-size end to end -------------------------------------------------------------------------

REDUCED = {"customers": 500, "terminals": 1000, "days": 80}
REDUCED_OFFSET = 59  # train from day 59, test days 73-79; validation assessed on days 59-65


@pytest.fixture(scope="module")
def reduced_report():
    one_candidate = hm.TUNING_FIXED | {"max_depth": 3, "eta": 0.1, "num_round": 100, "min_child_weight": 1}
    return hr.run_protocol(
        None,
        seed=3,
        simulation=REDUCED,
        train_offset_days=REDUCED_OFFSET,
        validation_folds=1,
        candidates=[one_candidate],
        bootstrap_resamples=30,
        ceiling_draws=10,
    )


def test_reduced_run_beats_random_clearly_on_the_held_out_week(reduced_report):
    base_rate = reduced_report["test_set"]["fraud_rate"]
    assert reduced_report["test_set"]["frauds"] >= 50
    rows = {r["name"]: r for r in reduced_report["handbook_protocol"] if not r["published"]}
    for name in (hm.REPRODUCTION, hm.PRODUCTION):
        assert rows[name]["auc_roc"] > 0.7
        assert rows[name]["average_precision"] > 5 * base_rate
        assert rows[name]["card_precision_at_100"] > 0
    # The anomaly model uses no labels: weaker, but still better than random.
    assert rows[hm.ANOMALY]["auc_roc"] > 0.6
    assert reduced_report["protocol"]["tested"] == ["2018-06-13", "2018-06-19"]
    assert reduced_report["validation_periods"][0]["tested"] == reduced_report["protocol"]["trained"]


def test_reduced_run_reports_every_row_with_the_required_fields(reduced_report, tmp_path):
    md_path, json_path = hr.write_report(reduced_report, tmp_path / "model-report")
    saved = json.loads(json_path.read_text())
    rows = saved["handbook_protocol"]
    for row in rows:
        assert {
            "name",
            "features",
            "auc_roc",
            "average_precision",
            "card_precision_at_100",
            "published",
        } <= set(row)
    published = [r for r in rows if r["published"]]
    assert [(r["auc_roc"], r["average_precision"], r["card_precision_at_100"]) for r in published] == [
        (0.862, 0.639, 0.273),
        (0.869, 0.687, 0.303),
        (0.867, 0.658, 0.287),
        (0.871, 0.606, 0.291),
        (0.808, 0.164, 0.19),
    ]
    ours = [r for r in rows if not r["published"]]
    assert ours[0]["features"] == list(spec.BASELINE_FEATURES)
    assert saved["dataset"] | REDUCED == saved["dataset"]
    assert saved["command"].startswith("python -m training.handbook_report")
    assert saved["wall_time_seconds"] > 0
    text = md_path.read_text()
    for row in rows:
        assert f"| {row['name']} |" in text
    # The bootstrap pairs every row with the reproduction row.
    assert f"{hm.PRODUCTION} - {hm.REPRODUCTION}" in saved["bootstrap"]
    # The oracle ceiling is measured on the same test set, above our rows, and each gain goal says
    # whether any model could reach it: ceiling minus our baseline row.
    ceiling = saved["ceiling"]
    assert ceiling["test_frauds"] == saved["test_set"]["frauds"]
    assert 0 < ceiling["invisible_frauds"] < ceiling["test_frauds"]
    base = next(r for r in ours if r["name"] == hm.REPRODUCTION)
    # At this size the test week has ~180 frauds and ~15 compromised cards a day: our baseline's CP@100
    # is one realisation, the ceiling an expectation, so they are compared within twice its spread.
    assert ceiling["average_precision"] > base["average_precision"]
    cp = "card_precision_at_100"
    assert ceiling[cp] + 2 * ceiling["std"][cp] >= base[cp]
    assert ceiling[f"{cp}_all_frauds_visible"] > max(ceiling[cp], base[cp])
    gains = saved["goals"]["production_gain_over_baseline"]
    assert gains["average_precision"]["max_gain"] == round(
        ceiling["average_precision"] - base["average_precision"], 4
    )
    best_cp = max(ceiling[cp], ceiling[f"{cp}_by_card_activity"])
    assert gains[cp]["max_gain"] == round(best_cp - base[cp], 4)
    for check in gains.values():
        assert check["reachable"] == (check["max_gain"] >= check["required"])
    assert "## What any model could reach on this test week" in text
    assert f"| 3 | {ceiling['test_frauds']} | {ceiling['invisible_frauds']} (" in text


def test_the_gain_goals_are_also_read_against_the_tuned_baseline(reduced_report, tmp_path):
    # "Our own baseline row" has two readings: the Handbook-settings row and the tuned one
    rows = {r["name"]: r for r in reduced_report["handbook_protocol"]}
    goals = hr.goals(reduced_report["handbook_protocol"], seed=3)
    for metric, check in goals["production_gain_over_tuned_baseline"].items():
        gain = rows[hr.PRODUCTION][metric] - rows[hr.TUNED_BASELINE][metric]
        assert check["gain"] == round(gain, 4)
        assert check["holds"] == (gain >= hr.PRODUCTION_MIN_GAIN[metric])
    hr.write_report(reduced_report | {"goals": goals}, tmp_path / "r")
    assert "| production − our tuned baseline, average_precision |" in (tmp_path / "r.md").read_text()


def test_reports_of_several_seeds_combine_into_one(reduced_report, tmp_path):
    first = tmp_path / "first.json"
    second = tmp_path / "second.json"
    first.write_text(json.dumps(reduced_report, default=hr._plain))
    other = json.loads(first.read_text())
    other["dataset"]["seed"] = 11
    second.write_text(json.dumps(other))
    assert hr.main(["--combine", str(first), str(second), "--report", str(tmp_path / "combined")]) == 0
    combined = json.loads((tmp_path / "combined.json").read_text())
    assert [o["seed"] for o in combined["other_seeds"]] == [11]
    assert all(not r["published"] for r in combined["other_seeds"][0]["rows"])
    assert "## Other seeds" in (tmp_path / "combined.md").read_text()


def test_the_ceiling_added_to_a_written_report_is_the_runs_own_and_checks_the_dataset(
    reduced_report, tmp_path
):
    # GIVEN a report written without its ceiling (as the committed one was)
    from training import handbook_ceiling as hc

    old = json.loads(json.dumps(reduced_report, default=hr._plain))
    del old["ceiling"]
    old["goals"] = hr.goals(old["handbook_protocol"], seed=3)
    (tmp_path / "r.json").write_text(json.dumps(old))

    # WHEN the ceiling command adds it (no model is trained: it re-simulates the dataset)
    assert hc.main(["--report", str(tmp_path / "r"), "--draws", "10"]) == 0

    # THEN the figures are exactly those the run computed itself, and the goals carry them
    added = json.loads((tmp_path / "r.json").read_text())
    assert {k: v for k, v in added["ceiling"].items() if k != "seconds"} == reduced_report["ceiling"]
    assert added["goals"] == json.loads(json.dumps(reduced_report["goals"], default=hr._plain))
    assert added["ceiling_added_by"]["command"].startswith("python -m training.handbook_ceiling --report")
    assert "training.handbook_ceiling" in (tmp_path / "r.md").read_text()
    assert added["handbook_protocol"] == old["handbook_protocol"]

    # AND a report whose dataset the seed does not reproduce is refused, nothing written
    old["dataset"]["transactions"] += 1
    (tmp_path / "bad.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="not the same dataset"):
        hc.main(["--report", str(tmp_path / "bad")])
    assert not (tmp_path / "bad.md").exists()


def test_python_m_training_runs_the_protocol_for_each_seed_and_writes_one_report(
    monkeypatch, tmp_path, capsys
):
    # GIVEN the protocol at the reduced size (the CLI's own run is the Handbook's full size)
    from training.__main__ import main

    full_size = hr.run_protocol
    one_candidate = hm.TUNING_FIXED | {"max_depth": 3, "eta": 0.1, "num_round": 50, "min_child_weight": 1}

    def reduced(csv, *, seed, bootstrap_resamples, command):
        return full_size(
            csv,
            seed=seed,
            simulation=REDUCED,
            train_offset_days=REDUCED_OFFSET,
            validation_folds=1,
            candidates=[one_candidate],
            bootstrap_resamples=bootstrap_resamples,
            command=command,
            ceiling_draws=3,
        )

    monkeypatch.setattr(hr, "run_protocol", reduced)

    # WHEN `python -m training` runs without --source, for two seeds
    assert (
        main(["--seed", "3", "--also-seeds", "4", "--bootstrap", "10", "--report", str(tmp_path / "r")]) == 0
    )

    # THEN one report holds the main seed's rows beside the published ones, and the other seed's figures
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["dataset"]["seed"] == 3
    assert {row["published"] for row in saved["handbook_protocol"]} == {True, False}
    assert "seed 4" in (tmp_path / "r.md").read_text()
    assert "seed 3: XGBoost" in capsys.readouterr().out
