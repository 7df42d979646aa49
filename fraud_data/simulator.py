"""The Handbook's transaction simulator (Le Borgne et al., *Reproducible Machine Learning for Credit
Card Fraud Detection*, chapter 3 "Transaction data simulator"), re-implemented with the standard
library so that it also runs inside a plain zip Lambda during `cdk deploy`.

Design, as published:
* customers at (x, y) ~ U(0, 100)², mean amount ~ U(5, 100), std = mean / 2, mean transactions per
  day ~ U(0, 4); terminals at (x, y) ~ U(0, 100)²; a customer uses the terminals within radius r = 5;
* per customer and day a Poisson number of transactions, each at a time of day ~ N(43200 s, 20000 s)
  (draws outside [0, 86400) are dropped, as in the Handbook), amount ~ N(mean, std), redrawn
  ~ U(0, 2·mean) when negative, rounded to cents, at a uniformly chosen terminal of the customer's;
* fraud scenarios, applied in the Handbook's order, a later one overriding the earlier `scenario`:
  S1 an amount > 220 is fraud; S2 each day 2 terminals are compromised for 28 days (that day
  included), all their transactions are fraud; S3 each day 3 customers are compromised for 14 days,
  a third (rounded down) of their transactions in that period have their amount multiplied by 5
  and are fraud. S1 looks at the amounts before S3's multiplication, as in the Handbook.

Seeded and deterministic: every random stream is a `random.Random` seeded from (seed, purpose), and
ties are broken by fixed keys, so the same arguments give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from fraud_data.transactions import Transactions

DAY_S = 86_400
S1_AMOUNT = 220.0
S2_TERMINALS_PER_DAY, S2_DAYS = 2, 28
S3_CUSTOMERS_PER_DAY, S3_DAYS, S3_FACTOR = 3, 14, 5


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    start: str = "2018-04-01"  # UTC midnight of the first day
    seed: int = 42
    radius: float = 5.0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.terminals < 1 or self.days < 1:
            raise ValueError("customers, terminals and days must be at least 1")
        if self.customers < S3_CUSTOMERS_PER_DAY or self.terminals < S2_TERMINALS_PER_DAY:
            raise ValueError(
                f"the fraud scenarios need at least {S3_CUSTOMERS_PER_DAY} customers "
                f"and {S2_TERMINALS_PER_DAY} terminals"
            )
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if start_epoch_s(self.start) < 0:  # (also validates the date)
            # Timestamps are epoch milliseconds >= 0 everywhere else (the event schema, read_csv).
            raise ValueError(f"start must be 1970-01-01 or later, got {self.start!r}")


@dataclass(frozen=True)
class CustomerProfile:
    x: float
    y: float
    mean_amount: float
    std_amount: float
    mean_tx_per_day: float
    terminals: tuple[int, ...]  # indices of the terminals within the radius


@dataclass(frozen=True)
class SimulationStats:
    """Counts in the Handbook's two ways: `s*_added` are the frauds each scenario added (what its
    notebook prints: 978 / 9,099 / 4,604); `by_scenario` is the final `scenario` column."""

    transactions: int
    frauds: int
    s1_added: int
    s2_added: int
    s3_added: int
    by_scenario: tuple[int, int, int, int]  # transactions with scenario 0, 1, 2, 3


@dataclass
class RawTransactions:
    """Parallel lists in generation order (customer, then day): what the scenarios work on."""

    seconds: list[int]  # since the start of day 0
    customer: list[int]
    terminal: list[int]
    amount: list[float]
    label: list[int]
    scenario: list[int]


@dataclass(frozen=True)
class Compromises:
    """Which terminals (S2) and customers (S3) were compromised on each day, by index."""

    terminals: list[tuple[int, ...]]
    customers: list[tuple[int, ...]]


@dataclass
class Simulation:
    config: SimulationConfig
    customers: list[CustomerProfile]
    terminals: list[tuple[float, float]]
    transactions: Transactions
    stats: SimulationStats
    compromises: Compromises


def start_epoch_s(start: str) -> int:
    try:
        day = dt.date.fromisoformat(start)
    except ValueError:
        raise ValueError(f"start must be a date YYYY-MM-DD, got {start!r}") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _rng(seed: int, purpose: str) -> random.Random:
    # String seeds are hashed with SHA-512 (version 2 seeding): stable across runs and platforms.
    return random.Random(f"fraud-sim:{seed}:{purpose}")


def customer_profiles(n: int, rng: random.Random) -> list[tuple[float, float, float, float, float]]:
    profiles = []
    for _ in range(n):
        x, y = rng.uniform(0, 100), rng.uniform(0, 100)
        mean_amount = rng.uniform(5, 100)
        profiles.append((x, y, mean_amount, mean_amount / 2, rng.uniform(0, 4)))
    return profiles


def terminal_locations(n: int, rng: random.Random) -> list[tuple[float, float]]:
    return [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(n)]


def terminals_within(
    points: list[tuple[float, float]], terminals: list[tuple[float, float]], radius: float
) -> list[tuple[int, ...]]:
    """For each point, the terminals at distance < radius (the Handbook's strict inequality).

    A grid of radius-sized cells means only the 3x3 neighbouring cells are checked instead of all
    terminals: ~1 M distance checks at full size instead of 50 M.
    """
    grid: dict[tuple[int, int], list[int]] = {}
    for index, (x, y) in enumerate(terminals):
        grid.setdefault((int(x // radius), int(y // radius)), []).append(index)
    r2 = radius * radius
    result = []
    for px, py in points:
        cx, cy = int(px // radius), int(py // radius)
        near = []
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                for index in grid.get((gx, gy), ()):
                    tx, ty = terminals[index]
                    if (tx - px) ** 2 + (ty - py) ** 2 < r2:
                        near.append(index)
        result.append(tuple(sorted(near)))
    return result


def _poisson(lam_exp: float, random01) -> int:
    """Knuth's multiplication method: cheap for the small means used here (< 4)."""
    k, p = 0, random01()
    while p > lam_exp:
        k += 1
        p *= random01()
    return k


def generate_legitimate(customers: list[CustomerProfile], days: int, rng: random.Random) -> RawTransactions:
    """The genuine transactions, customer by customer and day by day (the Handbook's loop)."""
    seconds: list[int] = []
    customer_of: list[int] = []
    terminal_of: list[int] = []
    amounts: list[float] = []
    random01, gauss, uniform = rng.random, rng.gauss, rng.uniform
    for index, profile in enumerate(customers):
        lam_exp = math.exp(-profile.mean_tx_per_day)
        mean, std, near = profile.mean_amount, profile.std_amount, profile.terminals
        for day in range(days):
            for _ in range(_poisson(lam_exp, random01)):
                time_of_day = gauss(DAY_S / 2, 20_000)
                if not 0 <= time_of_day < DAY_S:
                    continue  # dropped, as in the Handbook: no amount or terminal is drawn
                amount = gauss(mean, std)
                if amount < 0:
                    amount = uniform(0, 2 * mean)
                if not near:
                    continue  # a customer with no terminal in reach cannot pay (Handbook)
                seconds.append(day * DAY_S + int(time_of_day))
                customer_of.append(index)
                terminal_of.append(near[int(random01() * len(near))])
                amounts.append(round(amount, 2))
    n = len(seconds)
    return RawTransactions(seconds, customer_of, terminal_of, amounts, [0] * n, [0] * n)


def apply_scenarios(raw: RawTransactions, config: SimulationConfig) -> tuple[SimulationStats, Compromises]:
    """The three fraud scenarios, in the Handbook's order, in place on `raw`."""
    seconds, label, scenario, amounts = raw.seconds, raw.label, raw.scenario, raw.amount
    n = len(seconds)

    # S1: amounts above 220.
    for i in range(n):
        if amounts[i] > S1_AMOUNT:
            label[i] = scenario[i] = 1
    s1_added = sum(label)

    # S2: each day, 2 terminals compromised for 28 days, that day included. (The Handbook skips the
    # last day for S2 and S3; docs/features.md notes the difference.)
    rng2 = _rng(config.seed, "s2")
    terminals_by_day = [
        tuple(rng2.sample(range(config.terminals), S2_TERMINALS_PER_DAY)) for _ in range(config.days)
    ]
    compromised_days: dict[int, set[int]] = {}
    for day, terminals in enumerate(terminals_by_day):
        for terminal in terminals:
            compromised_days.setdefault(terminal, set()).update(range(day, day + S2_DAYS))
    s2_added = 0
    for i in range(n):
        days = compromised_days.get(raw.terminal[i])
        if days is not None and seconds[i] // DAY_S in days:
            s2_added += 1 - label[i]
            label[i], scenario[i] = 1, 2

    # S3: each day, 3 customers compromised for 14 days; a third of their transactions in that
    # period are the fraudster's: amount x5. Overlapping periods can pick a transaction twice (x25),
    # as in the Handbook.
    rng3 = _rng(config.seed, "s3")
    by_customer: list[list[int]] = [[] for _ in range(config.customers)]
    for i, customer in enumerate(raw.customer):
        by_customer[customer].append(i)  # in generation order: by day
    customers_by_day = []
    s3_added = 0
    for day in range(config.days):
        chosen = tuple(rng3.sample(range(config.customers), S3_CUSTOMERS_PER_DAY))
        customers_by_day.append(chosen)
        first, end = day * DAY_S, (day + S3_DAYS) * DAY_S
        candidates = [i for customer in chosen for i in by_customer[customer] if first <= seconds[i] < end]
        for i in rng3.sample(candidates, len(candidates) // 3):
            amounts[i] *= S3_FACTOR
            s3_added += 1 - label[i]
            label[i], scenario[i] = 1, 3

    counts = [0, 0, 0, 0]
    for s in scenario:
        counts[s] += 1
    stats = SimulationStats(n, sum(label), s1_added, s2_added, s3_added, tuple(counts))
    return stats, Compromises(terminals_by_day, customers_by_day)


def build_customers(config: SimulationConfig) -> tuple[list[CustomerProfile], list[tuple[float, float]]]:
    raw = customer_profiles(config.customers, _rng(config.seed, "customers"))
    terminals = terminal_locations(config.terminals, _rng(config.seed, "terminals"))
    reach = terminals_within([(x, y) for x, y, *_ in raw], terminals, config.radius)
    return [CustomerProfile(*p, terminals=near) for p, near in zip(raw, reach, strict=True)], terminals


def simulate(config: SimulationConfig | None = None) -> Simulation:
    config = config or SimulationConfig()
    customers, terminals = build_customers(config)
    raw = generate_legitimate(customers, config.days, _rng(config.seed, "tx"))
    stats, compromises = apply_scenarios(raw, config)
    return Simulation(config, customers, terminals, event_ordered(config, raw), stats, compromises)


def card_id(config: SimulationConfig, customer: int) -> str:
    return f"card-{customer:0{max(6, len(str(config.customers - 1)))}d}"


def terminal_id(config: SimulationConfig, terminal: int) -> str:
    return f"term-{terminal:0{max(5, len(str(config.terminals - 1)))}d}"


def event_ordered(config: SimulationConfig, raw: RawTransactions) -> Transactions:
    """Sort by time (ties: generation order, i.e. customer then draw), then number the ids in that
    order, so that (timestamp, transaction_id) order is the file order."""
    seconds, customer_of, terminal_of, amounts = raw.seconds, raw.customer, raw.terminal, raw.amount
    label, scenario = raw.label, raw.scenario
    n = len(seconds)
    order = sorted(range(n), key=lambda i: seconds[i] * n + i)
    base = start_epoch_s(config.start)
    id_width = max(8, len(str(n)))
    card_ids = [card_id(config, c) for c in range(config.customers)]
    term_ids = [terminal_id(config, t) for t in range(config.terminals)]
    prefix = f"sim-{config.seed}-"
    return Transactions(
        transaction_id=[f"{prefix}{k:0{id_width}d}" for k in range(n)],
        timestamp=[(base + seconds[i]) * 1000 for i in order],
        card_id=[card_ids[customer_of[i]] for i in order],
        terminal_id=[term_ids[terminal_of[i]] for i in order],
        amount=[round(amounts[i], 2) for i in order],
        label=[label[i] for i in order],
        scenario=[scenario[i] for i in order],
    )
