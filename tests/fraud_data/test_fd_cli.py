"""`python -m fraud_data simulate | features`: outputs, and user errors as one line with exit 2."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

import fraud_data.__main__ as cli
from contracts.features import ALL_FEATURES, BASELINE_FEATURES, MODEL_FEATURES

ROOT = Path(__file__).resolve().parents[2]
SIM_ARGS = ["--customers", "30", "--terminals", "100", "--days", "12", "--start", "2019-01-01", "--seed", "5"]


@pytest.fixture(scope="module")
def sim_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "sim.csv"
    assert cli.main(["simulate", "--out", str(path), *SIM_ARGS]) == 0
    return path


def test_simulate_writes_the_csv_and_a_summary(sim_csv, tmp_path, capsys):
    lines = sim_csv.read_text().splitlines()
    assert lines[0] == "transaction_id,timestamp,card_id,terminal_id,amount,label,scenario"
    assert lines[1].startswith("sim-5-")
    assert int(lines[1].split(",")[1]) >= 1546300800000  # 2019-01-01 UTC
    again = tmp_path / "again.csv"
    assert cli.main(["simulate", "--out", str(again), *SIM_ARGS]) == 0
    assert again.read_bytes() == sim_csv.read_bytes()
    assert f"{len(lines) - 1} transactions" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("choice", "names"), [("baseline", BASELINE_FEATURES), ("all", ALL_FEATURES), (None, MODEL_FEATURES)]
)
def test_features_columns(sim_csv, tmp_path, choice, names):
    out = tmp_path / "features.csv"
    extra = ["--features", choice] if choice else []
    assert cli.main(["features", "--in", str(sim_csv), "--out", str(out), *extra]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == ["transaction_id", *names]
    sim_lines = sim_csv.read_text().splitlines()
    assert len(lines) == len(sim_lines)
    assert [line.split(",")[0] for line in lines[1:]] == [line.split(",")[0] for line in sim_lines[1:]]


def _bad_csv(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "--in", "{tmp}/missing.csv", "--out", "{tmp}/f.csv"], "cannot read"),
        (["features", "--in", "{bad_header}", "--out", "{tmp}/f.csv"], "expected the header"),
        (["features", "--in", "{bad_row}", "--out", "{tmp}/f.csv"], "line 2"),
        (["features", "--in", "{dup}", "--out", "{tmp}/f.csv"], "duplicate"),
        (["features", "--in", "{huge_field}", "--out", "{tmp}/f.csv"], "line 3: not a CSV row (field larger"),
        (["features", "--in", "{binary}", "--out", "{tmp}/f.csv"], "binary.csv: not UTF-8 text"),
        (["simulate", "--out", "{tmp}/s.csv", "--start", "1969-12-01"], "1970-01-01 or later"),
        (["features", "--in", "{sim}", "--out", "{tmp}/no/such/dir/f.csv"], "cannot write"),
        (["features", "--in", "{sim}", "--out", "{tmp}/f.csv", "--features", "best"], "invalid choice"),
        (["simulate", "--out", "{tmp}/s.csv", "--start", "2018-02-30"], "YYYY-MM-DD"),
        (["simulate", "--out", "{tmp}/s.csv", "--customers", "0"], "at least 1"),
        (["simulate", "--out", "{tmp}/s.csv", "--days", "many"], "invalid int"),
        (["simulate"], "--out"),
        ([], "required"),
        (["train"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, message, sim_csv, tmp_path, capsys):
    header = "transaction_id,timestamp,card_id,terminal_id,amount,label,scenario\n"
    values = {
        "tmp": str(tmp_path),
        "sim": str(sim_csv),
        "bad_header": _bad_csv(tmp_path, "header.csv", "a,b\n1,2\n"),
        "bad_row": _bad_csv(tmp_path, "row.csv", header + "t1,noon,c,p,1.0,0,0\n"),
        "dup": _bad_csv(tmp_path, "dup.csv", header + "t1,1,c,p,1.0,0,0\nt1,2,c,p,1.0,0,0\n"),
        # a field beyond the csv module's size limit (csv.field_size_limit: 131,072 characters)
        "huge_field": _bad_csv(tmp_path, "huge.csv", header + "t1,1,c,p,1.0,0,0\nt2,2,c,p," + "9" * 200_000),
    }
    binary = tmp_path / "binary.csv"
    binary.write_bytes(header.encode() + bytes(range(128, 256)) * 100)
    values["binary"] = str(binary)
    assert cli.main([arg.format(**values) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("python -m fraud_data: error:")
    assert message in err


def test_a_write_that_fails_leaves_no_shortened_output_and_keeps_the_older_one(sim_csv, tmp_path):
    # GIVEN a features file from an earlier run
    out = tmp_path / "features.csv"
    assert cli.main(["features", "--in", str(sim_csv), "--out", str(out)]) == 0
    earlier = out.read_bytes()
    assert len(earlier) > 20_000

    # WHEN the next run may write only 20 KB to any file (a disk filling up half-way)
    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_data",
            "features",
            "--in",
            str(sim_csv),
            "--out",
            str(out),
            "--features",
            "all",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=small_files,  # noqa: PLW1509 - only sets a limit, no threads yet
    )

    # THEN it fails with one line, the earlier file is untouched and no partial file is left beside it
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.csv"]


def test_module_entry_point_reports_errors_without_a_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fraud_data", "features", "--in", str(tmp_path / "x.csv"), "--out", "y.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1


def test_module_docstring_describes_both_commands():
    assert "simulate --out PATH" in cli.__doc__
    assert "features --in PATH --out PATH" in cli.__doc__
