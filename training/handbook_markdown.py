"""The Handbook-protocol report as Markdown: our rows beside the published ones, the goals, the
bootstrap intervals, the ablation, the tuning, other seeds and honest notes.

Renders the dict built by `training.handbook_report.run_protocol`; computes nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts import features as spec
from training.handbook_models import PRODUCTION, REPRODUCTION


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _interval(bounds: Sequence[float]) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _yes(holds: bool) -> str:
    return "yes" if holds else "**no**"


def _features_cell(row: dict) -> str:
    names = row["features"]
    extras = [n for n in names if n not in spec.BASELINE_FEATURES]
    base = "15 baseline" if len(names) - len(extras) == len(spec.BASELINE_FEATURES) else f"{len(names)}"
    return base + (f" + {len(extras)} ours" if extras else "")


def _results_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | features | AUC ROC | Average Precision | CP@100 | source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["published"]:
            source = r.get("source", "published")
        else:
            source = f"this run, test week; trained on {r.get('params', {}).get('train_days', 7)} days"
        lines.append(
            f"| {r['name']} | {_features_cell(r)} | {_f(r['auc_roc'])} | {_f(r['average_precision'])} "
            f"| {_f(r['card_precision_at_100'])} | {source} |"
        )
    return lines


def _reachable(check: dict, bound: str, value: float) -> str:
    """The goals table's last cell: can any model reach the goal on this test week (the ceiling)?"""
    if "reachable" not in check:
        return "—"
    return f"{_yes(check['reachable'])} ({bound} {value:+.3f})" if bound else _yes(check["reachable"])


def _goal_lines(g: dict) -> list[str]:
    lines = [
        "| goal | measured | required | holds | reachable by any model (ceiling) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for metric, check in g["reproduction"].items():
        lines.append(
            f"| reproduction {metric}: ours − published | {check['difference']:+.3f} "
            f"| within ±{check['tolerance']} | {_yes(check['holds'])} | — |"
        )
    if "production_ap_on_default_seed" in g:
        check = g["production_ap_on_default_seed"]
        reach = (
            f"{_yes(check['reachable'])} (ceiling AP {check['ceiling']:.3f})" if "reachable" in check else "—"
        )
        lines.append(
            f"| production AP (default seed) | {check['ours']:.3f} | ≥ {check['required']} "
            f"| {_yes(check['holds'])} ({check['margin']:+.3f}) | {reach} |"
        )
    for metric, check in g["production_gain_over_baseline"].items():
        reach = _reachable(check, "gain ≤", check.get("max_gain", 0.0))
        lines.append(
            f"| production − our baseline, {metric} | {check['gain']:+.3f} | ≥ +{check['required']} "
            f"| {_yes(check['holds'])} | {reach} |"
        )
    for metric, check in g.get("production_gain_over_tuned_baseline", {}).items():
        lines.append(
            f"| production − our tuned baseline, {metric} | {check['gain']:+.3f} "
            f"| ≥ +{check['required']} | {_yes(check['holds'])} | — |"
        )
    if "production_gain_over_tuned_baseline" in g:
        lines += [
            "",
            "*Our baseline* is the reproduction row (the Handbook's settings). Read against the tuned "
            "baseline row instead (the same 15 features, tuned on validation like the production row), "
            "the gains are smaller; and the production row also trains on 42 days where the baselines "
            "train on 7 (the window was part of its tuning), so part of either gain is the longer window.",
        ]
    return lines


CEILING_NOTE = (
    "No model is trained for this. In scenario 2 every transaction at a compromised terminal is a fraud, "
    "but amount, time, card and terminal are those of a genuine purchase: the only trace is the "
    "terminal's fraud labels, which arrive 7 days late. So the S2 frauds less than 7 days after the first"
    " fraud of their terminal's streak are invisible to any model (`training/handbook_ceiling.py` states "
    "the rule). The *ceiling* ranks every other test fraud first — a perfect model — and scores the "
    "invisible frauds like the genuine transactions, at random; its figures are the mean of {draws} "
    "random draws (standard deviation over the draws ≤ {auc:.3f} AUC, {ap:.3f} AP, {cp:.3f} CP@100), on "
    "the protocol's own test set with its own metric code. A model that cannot tell the invisible frauds "
    "from genuine transactions cannot beat it in expectation (a single test week can land a little above "
    "it by chance, by about the spread of the draws). Two CP@100 references beside it: with every fraud "
    "known (the metric's own maximum: most days have far fewer than 100 compromised cards), and with the "
    "indistinguishable cards ranked busiest first (a card that pays more often is likelier to meet a "
    "compromised terminal — the one lever a model has on them; counted over the whole day, so generous). "
    "A gain goal is reachable at all only if the room over our baseline row — ceiling − baseline; for "
    "CP@100 the higher of the ceiling and the busiest-first figure, minus baseline — reaches it."
)


def _ceiling_lines(report: dict) -> list[str]:
    """One row per seed that has a ceiling: the ceiling beside our baseline and production rows, then
    which goals any model could reach on each seed."""
    seeds = [(report["dataset"]["seed"], report["ceiling"], report["handbook_protocol"], report["goals"])]
    seeds += [
        (o["seed"], o["ceiling"], o["rows"], o["goals"])
        for o in report.get("other_seeds", [])
        if o.get("ceiling")
    ]
    ap, cp = "average_precision", "card_precision_at_100"
    spread = {m: max(c["std"][m] for _, c, _, _ in seeds) for m in ("auc_roc", ap, cp)}
    out = [
        CEILING_NOTE.format(draws=seeds[0][1]["draws"], auc=spread["auc_roc"], ap=spread[ap], cp=spread[cp]),
        "",
        "| seed | test frauds | invisible frauds | ceiling AUC / AP / CP@100 "
        "| CP@100 all frauds known / busiest first | our baseline AP / CP@100 | production AP / CP@100 "
        "| room over our baseline: AP / CP@100 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for seed, c, rows, goals in seeds:
        by_name = {r["name"]: r for r in rows if not r["published"]}
        base, prod = by_name[REPRODUCTION], by_name[PRODUCTION]
        references = (
            f"{_f(c[f'{cp}_all_frauds_visible'])} / {_f(c[f'{cp}_by_card_activity'])}"
            if f"{cp}_by_card_activity" in c
            else "—"
        )
        room = goals["production_gain_over_baseline"][cp].get("max_gain", c[cp] - base[cp])
        out.append(
            f"| {seed} | {c['test_frauds']} | {c['invisible_frauds']} ({c['invisible_share']:.1%}) "
            f"| {_f(c['auc_roc'])} / {_f(c[ap])} / {_f(c[cp])} | {references} "
            f"| {_f(base[ap])} / {_f(base[cp])} "
            f"| {_f(prod[ap])} / {_f(prod[cp])} | {c[ap] - base[ap]:+.3f} / {room:+.3f} |"
        )
    out.append("")
    reach = []
    for seed, _, _, goals in seeds:
        parts = []
        if "reachable" in goals.get("production_ap_on_default_seed", {}):
            check = goals["production_ap_on_default_seed"]
            parts.append(f"AP ≥ {check['required']} {_yes(check['reachable'])}")
        for metric, check in goals["production_gain_over_baseline"].items():
            if "reachable" in check:
                label = "AP" if metric == ap else "CP@100"
                parts.append(f"{label} gain ≥ +{check['required']} {_yes(check['reachable'])}")
        reach.append(f"seed {seed}: " + ", ".join(parts))
    out += [f"Goals any model could reach at all — {'; '.join(reach)}.", ""]
    added = report.get("ceiling_added_by")
    if added:
        out.append(
            f"Computed by `{added['command']}` in {added['wall_time_seconds']:.0f} s (re-simulates each "
            "seed's dataset, checks its transaction and fraud counts against the report, trains nothing)."
        )
    else:
        out.append(f"Computed by the run itself (`{report['command']}`), on the same data.")
    return out


def _bootstrap_lines(boot: dict, names: Sequence[str]) -> list[str]:
    lines = [
        "| model (or difference) | AUC ROC | Average Precision | CP@100 |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        for key in (name, f"{name} - {REPRODUCTION}"):
            if key in boot:
                b = boot[key]
                label = key if key == name else f"{name} − baseline (paired)"
                lines.append(
                    f"| {label} | {_interval(b['auc_roc'])} | {_interval(b['average_precision'])} "
                    f"| {_interval(b['card_precision_at_100'])} |"
                )
    return lines


def _ablation_lines(ablation: dict) -> list[str]:
    lines = [
        "| features | validation AUC / AP / CP@100 | test AUC / AP / CP@100 | test AP gain | kept |",
        "| --- | --- | --- | --- | --- |",
    ]
    base_ap = ablation["rows"][0]["test"]["average_precision"]
    for row in ablation["rows"]:
        v, t = row["validation"], row["test"]
        group = row["group"].removeprefix("+ ")
        kept = (
            "—"
            if row["group"] in ("baseline", "+ kept groups")
            else _yes(group in ablation["selected_groups"])
        )
        names = ", ".join(f"`{n}`" for n in row["features"]) or "the 15 baseline"
        lines.append(
            f"| {row['group']}: {names} | {_f(v['auc_roc'])} / {_f(v['average_precision'])} / "
            f"{_f(v['card_precision_at_100'])} | {_f(t['auc_roc'])} / {_f(t['average_precision'])} / "
            f"{_f(t['card_precision_at_100'])} | {t['average_precision'] - base_ap:+.3f} | {kept} |"
        )
    return lines


def _params(params: dict) -> str:
    keep = (
        "train_days",
        "max_depth",
        "eta",
        "num_round",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "tree_method",
    )
    return ", ".join(f"{k}={params[k]}" for k in keep if k in params)


def _data_lines(report: dict) -> list[str]:
    ds, protocol, test = report["dataset"], report["protocol"], report["test_set"]
    scen = ds["frauds_by_scenario"]
    if ds["kind"] == "simulated":
        size = f"{ds['customers']:,} customers, {ds['terminals']:,} terminals, "
        size += f"{ds['days']} days from {ds['start']}"
    else:
        size = f"read from `{ds['path']}`"
    trained, skipped, tested = protocol["trained"], protocol["skipped"], protocol["tested"]
    removed = ", ".join(map(str, test["removed_known_compromised_per_day"]))
    assessed = ", ".join(p["tested"][0] for p in report["validation_periods"])
    return [
        f"- Dataset: {ds['kind']}, seed {ds['seed']}, {size}: {ds['transactions']:,} transactions, "
        f"{ds['frauds']:,} frauds (by final scenario S1 {scen['S1']:,}, S2 {scen['S2']:,}, "
        f"S3 {scen['S3']:,}). The Handbook's dataset: 1,754,155 transactions, 14,681 frauds.",
        f"- Trained on {trained[0]} to {trained[1]} ({report['train_set']['transactions']:,} transactions, "
        f"{report['train_set']['frauds']:,} frauds); skipped {skipped[0]} to {skipped[1]} (the "
        f"{protocol['delay_days']}-day feedback delay); tested on {tested[0]} to {tested[1]}.",
        f"- Test set: {test['transactions']:,} transactions, {test['frauds']:,} frauds (base rate "
        f"{test['fraud_rate']:.4f}, a random scorer's AP), {test['cards']:,} cards, after removing from "
        f"each test day the cards known compromised by then ({removed} transactions removed per day). "
        "The Handbook's test set: 58,264 transactions, 385 frauds.",
        "- Metrics: AUC ROC and Average Precision per transaction (scikit-learn); Card Precision@100 per "
        "test day (each card's highest score, the top 100 cards, the share compromised; cards found on an "
        "earlier test day removed from later ones), averaged over the 7 days.",
        "- Every selection rule (extra feature groups, hyperparameters) decides on the Handbook's validation "
        f"periods — the protocol shifted back 14, 21, … days, assessed on the weeks from {assessed}; the "
        "test week is only reported (the rules were revised once after seeing it: see the last note).",
    ]


BOOTSTRAP_NOTE = (
    "Cards, not transactions, are resampled: a compromised card's frauds come in bursts and CP@100 "
    "counts cards, so transactions are not independent; 7 days are too few units. Frauds sharing a "
    "compromised terminal stay correlated across cards, so the intervals are if anything a little "
    "narrow. Differences are paired (both models on the same resampled cards)."
)
ABLATION_NOTE = (
    "XGBoost with the Handbook's settings on the baseline features plus one group of our real-time "
    "features at a time. A group is kept when it raises the mean validation AP by ≥ 0.002 (CP@100 "
    "moves by 0.0014 per card and day, below its noise, so it is not used); the test columns only "
    "report what that choice is worth."
)


def _other_seed_lines(others: list[dict]) -> list[str]:
    out = [
        "The same command with `--seed S`: a different simulated dataset, the same protocol; "
        "hyperparameters tuned again on that dataset's own validation weeks.",
        "",
        "| seed | model | AUC ROC | AP | CP@100 | production − baseline AP / CP@100 | gain goals hold |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for other in others:
        g = other["goals"]["production_gain_over_baseline"]
        gain = f"{g['average_precision']['gain']:+.3f} / {g['card_precision_at_100']['gain']:+.3f}"
        holds = _yes(all(c["holds"] for c in g.values()))
        for r in other["rows"]:
            tail = f"{gain} | {holds}" if r["name"] == PRODUCTION else " | "
            out.append(
                f"| {other['seed']} | {r['name']} | {_f(r['auc_roc'])} | {_f(r['average_precision'])} "
                f"| {_f(r['card_precision_at_100'])} | {tail} |"
            )
    out.append("")
    for o in others:
        kept = ", ".join(o["selected_groups"]) or "none"
        repro = ", ".join(
            f"{metric} {check['difference']:+.3f} ({'within' if check['holds'] else '**outside**'} "
            f"±{check['tolerance']})"
            for metric, check in o["goals"]["reproduction"].items()
        )
        out.append(f"- seed {o['seed']}: reproduction vs the published XGBoost row: {repro}.")
        tuned = o["goals"].get("production_gain_over_tuned_baseline")
        if tuned:
            out.append(
                f"- seed {o['seed']}: production − our tuned baseline: AP "
                f"{tuned['average_precision']['gain']:+.3f}, CP@100 "
                f"{tuned['card_precision_at_100']['gain']:+.3f} "
                f"(goals {_yes(all(c['holds'] for c in tuned.values()))})."
            )
        out.append(
            f"- seed {o['seed']}: {o['dataset']['transactions']:,} transactions, "
            f"{o['dataset']['frauds']:,} frauds; groups its validation weeks would keep: {kept}; "
            f"production features from {o['production_features_from']}; "
            f"`{o['command']}` in {o['wall_time_seconds']:.0f} s."
        )
    return out


def markdown(report: dict) -> str:
    ours = [r for r in report["handbook_protocol"] if not r["published"]]
    by_name = {r["name"]: r for r in ours}
    boot = report["bootstrap"]
    tuning = report["tuning"]
    production = ", ".join(f"`{n}`" for n in by_name[PRODUCTION]["features"])
    out = [
        "# Model report: the Handbook's protocol",
        "",
        "Our models evaluated exactly as the *Reproducible Machine Learning for Credit Card Fraud "
        "Detection — Practical Handbook* (Le Borgne et al.) evaluates its own, on data from our "
        "re-implementation of its simulator, beside the figures it publishes.",
        "",
        f"Produced by `{report['command']}` in {report['wall_time_seconds']:.0f} s "
        f"(simulation and features {report['data_preparation_seconds']:.0f} s)"
        + (f"; seeds merged with `{report['combined_by']}`." if report.get("combined_by") else "."),
        "",
        "## Data and protocol",
        "",
        *_data_lines(report),
        "",
        "## Results on the test week",
        "",
        *_results_table(report["handbook_protocol"]),
        "",
    ]
    if report.get("ceiling"):
        out += ["## What any model could reach on this test week", "", *_ceiling_lines(report), ""]
    out += [
        "## Goals (issue 11)",
        "",
        *_goal_lines(report["goals"]),
        "",
        f"## Bootstrap intervals ({boot['confidence']:.0%}, {boot['resamples']} resamples of the test cards)",
        "",
        BOOTSTRAP_NOTE,
        "",
        *_bootstrap_lines(boot, [r["name"] for r in ours]),
        "",
        "## Our features: ablation",
        "",
        ABLATION_NOTE,
        "",
        *_ablation_lines(report["ablation"]),
        "",
        f"Production features (from {report['ablation'].get('production_features_from', 'this run')}; "
        f"spec version `{report['feature_spec_version']}`): {production}.",
        "",
        "## Tuning (on validation only)",
        "",
        f"- Candidates: {len(tuning['baseline']['table'])} XGBoost settings for the baseline features, "
        f"{len(tuning['production']['table'])} (including the training window) for the production "
        "features; ranked by mean validation AP (rounded to 0.001), then CP@100.",
        f"- Baseline features: {_params(tuning['baseline']['best'])}.",
        f"- Production features: {_params(tuning['production']['best'])}.",
        "- Reproduction row (the Handbook's `XGBClassifier(random_state=0)` of 2021): "
        f"{_params(by_name[REPRODUCTION]['params'])}.",
    ]
    if report.get("other_seeds"):
        out += ["", "## Other seeds", "", *_other_seed_lines(report["other_seeds"])]
    out += ["", "## Notes", "", *NOTES, ""]
    return "\n".join(out)


NOTES = [
    "- The data differ from the Handbook's: ours is a statistical re-implementation of its simulator with "
    "our own random streams, so its rows are a reference, not a target to match digit for digit; the "
    "reproduction tolerances are roughly the seed-to-seed spread.",
    "- The published *tuned XGBoost* row is the mean of 4 prequential test weeks (chapter 5), and the "
    "published *Isolation Forest* row was scored on the validation week with 10 trees (chapter 7); our rows "
    "are all on the single test week of chapter 3.",
    "- Our reproduction row uses xgboost 3 with the Handbook's 2021 defaults spelt out (depth 6, eta 0.3, "
    "100 rounds, base score 0.5, exact splits); the Handbook also standardised the inputs, which changes "
    "nothing for trees.",
    "- CP@100 ties are broken by card id; the Handbook's pandas sort leaves them to its sorting algorithm.",
    "- The anomaly rows are IsolationForest, the local stand-in for SageMaker Random Cut Forest (100 trees × "
    "512 samples, as deployed), trained without labels on the training week; RCF itself is not run here.",
    "- The simulator seed is the dataset's identity, never tuned; the model seed is fixed at 0.",
    "- Wall times: measured on a 2-core machine shared with other jobs, so only indicative (the whole "
    "`make train` took 15.5 minutes on 2026-12-02, 25 to 50 minutes on busier days).",
    "- Disclosure: the ablation's keep rule (it also required no drop in validation CP@100) and the "
    "production search space (7-day training window only) were revised after a first full run on seed 42, "
    "whose production row then scored AUC 0.828 / AP 0.621 / CP@100 0.291 on the test week with 4 extra "
    "features. The revision rests on validation evidence (the amount-to-mean group's +0.012 validation AP "
    "had been rejected for a 0.001 CP@100 dip; longer windows validated better), but it was made after "
    "those test figures had been seen.",
    "- Disclosure: the terminal fraud-history group (4 features) came from a search over candidate "
    "features on seed 42's validation weeks only, whose choice was written down with its time before any "
    "test week was scored. That choice also held a card feature (the last 14 days' amounts at least 3 times "
    "the card's mean of the 30 days before); on the test weeks the whole choice scored AP 0.702 / 0.695 / "
    "0.755 (seeds 42 / 7 / 11) against the production row's 0.668 / 0.685 / 0.734 of the time. The card "
    "feature was then left out for its cost (44 days of card history instead of 30 in the feature store), "
    "a decision made after those test figures had been seen (docs/features.md).",
]
