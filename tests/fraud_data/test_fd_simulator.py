"""The simulator: determinism, CSV shape, the three fraud scenarios' mechanics."""

from __future__ import annotations

import copy
import math
import re

import pytest

from fraud_data.simulator import (
    DAY_S,
    SimulationConfig,
    apply_scenarios,
    build_customers,
    card_id,
    generate_legitimate,
    simulate,
    start_epoch_s,
    terminal_id,
)
from fraud_data.simulator import _rng as sim_rng
from fraud_data.transactions import COLUMNS, Transactions, read_csv, to_csv_text, write_csv

TINY = SimulationConfig(customers=40, terminals=200, days=20, seed=3)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first, second = to_csv_text(simulate(TINY).transactions), to_csv_text(simulate(TINY).transactions)
    assert first == second
    other = SimulationConfig(customers=40, terminals=200, days=20, seed=4)
    assert to_csv_text(simulate(other).transactions) != first


def test_csv_shape_ids_and_event_order(small_sim, tmp_path):
    path = tmp_path / "sim.csv"
    write_csv(small_sim.transactions, path)
    lines = path.read_text().splitlines()
    assert (
        lines[0] == ",".join(COLUMNS) == "transaction_id,timestamp,card_id,terminal_id,amount,label,scenario"
    )
    assert re.fullmatch(r"sim-7-\d{8},\d+,card-\d{6},term-\d{5},\d+\.\d\d,[01],[0-3]", lines[1])
    back = read_csv(path)
    tx = small_sim.transactions
    assert back.transaction_id == tx.transaction_id
    assert back.timestamp == tx.timestamp
    assert back.amount == tx.amount
    assert back.label == tx.label
    assert back.scenario == tx.scenario
    assert tx.is_event_ordered()
    assert tx.transaction_id == sorted(tx.transaction_id)  # ids follow event order
    start_ms = start_epoch_s("2018-04-01") * 1000
    assert start_ms == 1522540800000
    assert all(start_ms <= t < start_ms + 50 * DAY_S * 1000 and t % 1000 == 0 for t in tx.timestamp)
    id_pattern = re.compile(r"[A-Za-z0-9._:-]{1,64}")
    assert all(id_pattern.fullmatch(v) for v in (*tx.card_id[:100], *tx.terminal_id[:100]))
    assert card_id(TINY, 42) == "card-000042"
    assert terminal_id(TINY, 42) == "term-00042"


def test_labels_and_scenarios_agree(small_sim):
    tx = small_sim.transactions
    assert all((label == 1) == (scenario > 0) for label, scenario in zip(tx.label, tx.scenario, strict=True))
    stats = small_sim.stats
    assert stats.transactions == len(tx)
    assert stats.frauds == sum(tx.label)
    assert stats.s1_added + stats.s2_added + stats.s3_added == stats.frauds
    assert stats.by_scenario == tuple(tx.scenario.count(s) for s in range(4))
    assert min(stats.by_scenario[1:]) > 0  # every scenario happens at this size


def test_s1_amount_above_220_is_fraud(small_sim):
    tx = small_sim.transactions
    for amount, scenario in zip(tx.amount, tx.scenario, strict=True):
        if scenario == 0:
            assert amount <= 220
        if scenario == 1:
            assert amount > 220


def test_s2_compromised_terminals_for_28_days(small_sim):
    config, tx = small_sim.config, small_sim.transactions
    start_ms = start_epoch_s(config.start) * 1000
    compromised: set[tuple[str, int]] = set()
    for day, terminals in enumerate(small_sim.compromises.terminals):
        assert len(set(terminals)) == 2
        compromised.update((terminal_id(config, t), d) for t in terminals for d in range(day, day + 28))
    hits = 0
    for term, ts, scenario in zip(tx.terminal_id, tx.timestamp, tx.scenario, strict=True):
        on_compromised = (term, (ts - start_ms) // (DAY_S * 1000)) in compromised
        hits += on_compromised
        if on_compromised:
            assert scenario in (2, 3)  # S3 may override the scenario, never the fraud
        if scenario == 2:
            assert on_compromised
    assert hits > 100


def test_s3_multiplies_a_third_of_compromised_customers_transactions_by_5():
    config = SimulationConfig(customers=60, terminals=300, days=40, seed=11)
    customers, _ = build_customers(config)
    raw = generate_legitimate(customers, config.days, sim_rng(config.seed, "tx"))
    original = copy.deepcopy(raw.amount)
    _, compromises = apply_scenarios(raw, config)

    expected_picks = 0
    windows: dict[int, list[range]] = {}
    for day, chosen in enumerate(compromises.customers):
        assert len(set(chosen)) == 3
        candidates = [
            i
            for i, (c, s) in enumerate(zip(raw.customer, raw.seconds, strict=True))
            if c in chosen and day <= s // DAY_S < day + 14
        ]
        expected_picks += len(candidates) // 3
        for c in chosen:
            windows.setdefault(c, []).append(range(day, day + 14))

    picks = 0
    for i, scenario in enumerate(raw.scenario):
        if scenario != 3:
            assert raw.amount[i] == original[i]
            continue
        assert any(raw.seconds[i] // DAY_S in w for w in windows[raw.customer[i]])
        if original[i] > 0:
            times = math.log(raw.amount[i] / original[i], 5)
            assert times == pytest.approx(round(times))
            assert round(times) >= 1
            picks += round(times)
    assert raw.scenario.count(3) > 20
    # Every pick of every day is accounted for (amounts of 0.00 aside, whose factor cannot be seen).
    zero_picked = sum(1 for i, s in enumerate(raw.scenario) if s == 3 and original[i] == 0)
    assert expected_picks - zero_picked * 3 <= picks <= expected_picks


def test_profiles_follow_the_handbook_distributions():
    config = SimulationConfig(customers=4_000, terminals=2_000, days=1, seed=5)
    customers, terminals = build_customers(config)
    means = [c.mean_amount for c in customers]
    rates = [c.mean_tx_per_day for c in customers]
    assert min(means) >= 5
    assert max(means) <= 100
    assert sum(means) / len(means) == pytest.approx(52.5, abs=1.5)  # U(5, 100)
    assert all(c.std_amount == c.mean_amount / 2 for c in customers)
    assert min(rates) >= 0
    assert max(rates) <= 4
    assert sum(rates) / len(rates) == pytest.approx(2.0, abs=0.06)  # U(0, 4)
    assert all(0 <= v <= 100 for c in customers for v in (c.x, c.y))
    assert all(0 <= v <= 100 for xy in terminals for v in xy)
    for c in customers[:200]:  # the grid search finds exactly the terminals within r = 5
        brute = tuple(i for i, (x, y) in enumerate(terminals) if math.hypot(x - c.x, y - c.y) < 5)
        assert c.terminals == brute


def test_daily_counts_times_and_amounts():
    config = SimulationConfig(customers=400, terminals=2_000, days=30, seed=9)
    customers, _ = build_customers(config)
    raw = generate_legitimate(customers, config.days, sim_rng(config.seed, "tx"))
    # Poisson(rate) per day, minus the ~3.1 % of times of day outside [0, 86400).
    expected = sum(c.mean_tx_per_day for c in customers if c.terminals) * config.days * 0.969
    assert len(raw.seconds) == pytest.approx(expected, rel=0.03)
    times = [s % DAY_S for s in raw.seconds]
    assert sum(times) / len(times) == pytest.approx(43_200, abs=600)
    spread = math.sqrt(sum((t - 43_200) ** 2 for t in times) / len(times))
    assert 18_000 < spread < 20_000  # N(43200, 20000) cut to one day
    z = [
        (a - customers[c].mean_amount) / customers[c].std_amount
        for a, c in zip(raw.amount, raw.customer, strict=False)
    ]
    # N(0, 1), except that the ~2.3 % below -2 (negative amounts) are redrawn in [-2, 2]: mean ~ +0.055.
    assert sum(z) / len(z) == pytest.approx(0.055, abs=0.03)
    assert all(a >= 0 and round(a, 2) == a for a in raw.amount)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": 0},
        {"terminals": 1},
        {"days": 0},
        {"seed": -1},
        {"start": "2018-02-30"},
        {"customers": 2},
    ],
)
def test_invalid_configurations_are_refused(kwargs):
    with pytest.raises(ValueError, match=r"\w"):
        SimulationConfig(**kwargs)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        pytest.param('"a\nb",1000,card-1,term-1,10.00,0,0', "transaction_id", id="newline-in-id"),
        pytest.param("t1,1000,card 1,term-1,10.00,0,0", "card_id", id="space-in-card"),
        pytest.param("t1,1000,card-1,{term},10.00,0,0", "terminal_id", id="brace-in-terminal"),
        pytest.param("t1,1000,card-1,term-1,1e308,0,0", "amount", id="amount-beyond-max"),
        pytest.param("t1,1000,card-1,term-1,-1,0,0", "amount", id="negative-amount"),
    ],
)
def test_rows_the_event_schema_refuses_are_refused_with_their_line(tmp_path, row, problem):
    # The backfill writes these ids into Redis state records, where a newline splits one id in two.
    path = tmp_path / "bad.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "t0,500,card-1,term-1,1.00,0,0\n" + row + "\n")
    with pytest.raises(ValueError, match=rf"line 3: .*{problem}"):
        read_csv(path)


def test_a_slice_is_a_shifted_copy_that_leaves_the_table_alone():
    table = Transactions(
        transaction_id=["a", "b", "c"],
        timestamp=[10, 20, 30],
        card_id=["c1", "c2", "c1"],
        terminal_id=["t1", "t1", "t2"],
        amount=[1.0, 2.0, 3.0],
        label=[0, 1, 0],
        scenario=[0, 2, 0],
    )
    part = table.slice(1, 3, shift_ms=5)
    assert list(part.rows()) == [("b", 25, "c2", "t1", 2.0, 1, 2), ("c", 35, "c1", "t2", 3.0, 0, 0)]
    part.transaction_id.append("d")
    part.timestamp[0] = 0
    assert table.transaction_id == ["a", "b", "c"]
    assert table.timestamp == [10, 20, 30]
