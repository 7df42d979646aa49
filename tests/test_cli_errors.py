"""Every command a user runs answers a user error with one line on stderr, a non-zero exit code and what
to do; a traceback is left for our own bugs (issue 15).

Each test runs the real command in a subprocess, as a user would (`python -m …`, `python app.py` as the
CDK CLI runs it, `make …`), and checks the whole of stderr: exactly one `<prog>: error:` line, no
`Traceback`, the exit code, and the hint.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from emulators.redis_stack import free_port

REPO = Path(__file__).resolve().parent.parent
# What the Makefile exports for every command (its jsii line is under test in test_node_banner_*).
MAKE_ENV = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "PYTHONDONTWRITEBYTECODE": "1"}
SUB_MAKE_VARIABLES = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    # Only a test's own REDIS_URL; and no make variables: the suite itself runs under `make test`, and a
    # make started with them is a sub-make, which prints "Entering directory" lines a user never sees.
    inherited = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", *SUB_MAKE_VARIABLES}}
    full_env = {**inherited, **MAKE_ENV, **(env or {})}
    return subprocess.run(
        args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def python_m(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return run([sys.executable, "-m", module, *args], env=env, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, prog: str, *, status: int = 1) -> str:
    """The single error line, after checking everything around it."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"{prog}: error: "), errors[0]
    return errors[0]


def no_internal_names(line: str) -> None:
    # argparse shows a failing type= by its function name ("invalid _positive_int value").
    for internal in ("invalid _", "_positive_int", "_rate"):
        assert internal not in line, line


# --- Redis given by the user --------------------------------------------------------------------


def test_demo_with_an_unreachable_redis_says_so_in_one_line():
    # GIVEN a REDIS_URL nothing listens on WHEN the demo starts
    result = python_m("demo", "--count", "10", env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    # THEN one line names the problem and the way out, and nothing was started (no summary)
    line = one_error_line(result, "demo")
    assert "cannot use the Redis at REDIS_URL" in line
    assert "Connection refused" in line
    assert "unset REDIS_URL" in line
    assert result.stdout == ""


# The password's first part is what redis-py's parser quotes when an unencoded `/`, `#` or `?` ends
# the host early ("Port could not be cast to integer value as 'S3cr'").
MALFORMED_URLS = [
    "secretpassword@localhost:6379",
    "redis://:secret/password@127.0.0.1:6390/0",
    "redis://:secret#password@127.0.0.1:6390/0",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_demo_with_a_malformed_redis_url_says_how_to_write_one_and_never_echoes_it(url):
    result = python_m("demo", "--count", "10", env={"REDIS_URL": url})
    line = one_error_line(result, "demo")
    assert "REDIS_URL is not a valid Redis URL" in line
    assert "redis://" in line
    assert "secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("url", MALFORMED_URLS[1:])
def test_backfill_and_render_never_echo_a_malformed_redis_url(tmp_path, url):
    backfill = python_m(
        "demo.backfill", "--redis-url", url, "--days", "1", "--customers", "5", "--terminals", "10"
    )
    render = python_m("grafana.render", "--redis-url", url, "--out", str(tmp_path / "charts"))
    for result, prog in ((backfill, "demo.backfill"), (render, "grafana.render")):
        assert "not a valid Redis URL" in one_error_line(result, prog)
        assert "secret" not in result.stderr + result.stdout


def test_demo_with_a_redis_without_modules_names_what_is_missing(redis_without_modules):
    result = python_m("demo", "--count", "10", env={"REDIS_URL": redis_without_modules})
    line = one_error_line(result, "demo")
    assert "lacks ReJSON, Search, TimeSeries" in line
    assert "unset REDIS_URL" in line


def test_render_with_an_unreachable_or_malformed_redis_is_one_line(tmp_path):
    out = str(tmp_path / "charts")
    refused = python_m("grafana.render", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--out", out)
    assert "Connection refused" in one_error_line(refused, "grafana.render")
    malformed = python_m("grafana.render", "--redis-url", "localhost:6379", "--out", out)
    assert "not a valid Redis URL" in one_error_line(malformed, "grafana.render")
    assert not Path(out).exists() or not any(Path(out).iterdir())


def test_render_from_a_redis_without_modules_says_so_instead_of_drawing_errors(
    redis_without_modules, tmp_path
):
    out = tmp_path / "charts"
    result = python_m("grafana.render", "--redis-url", redis_without_modules, "--out", str(out))
    line = one_error_line(result, "grafana.render")
    assert "lacks ReJSON, Search, TimeSeries" in line
    assert not out.exists()


# --- options in words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("demo", ["--count", "x"], "'x' is not a whole number"),
        ("demo", ["--count", "0"], "at least 1"),
        ("demo", ["--shards", "two"], "'two' is not a whole number"),
        ("demo", ["--rate", "fast"], "records per second or 'max'"),
        ("producer", ["--count", "x"], "'x' is not a whole number"),
        ("producer", ["--rate", "fast"], "records per second or 'max'"),
    ],
)
def test_a_bad_option_value_is_explained_in_words(module, args, expected):
    result = python_m(module, *args)
    prog = "producer" if module == "producer" else f"python -m {module}"
    line = one_error_line(result, prog, status=2)
    assert expected in line
    no_internal_names(line)


def test_producer_accepts_rate_max_like_the_demo_and_its_dry_run_says_would_send():
    # GIVEN --rate max (the demo's spelling) and a dry run WHEN the producer runs
    result = python_m("producer", "--source", "synthetic", "--rate", "max", "--dry-run", "--count", "3")
    # THEN it is accepted, prints 3 records, and its progress never claims anything was sent
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    progress = [line for line in result.stderr.splitlines() if "rec/s" in line]
    assert progress, result.stderr
    assert all(not line.startswith("sent") for line in progress), progress
    assert any(line.startswith("would send 3/3") for line in progress), progress


def test_producer_with_a_directory_as_source_says_it_is_a_directory(tmp_path):
    result = python_m("producer", "--source", str(tmp_path), "--dry-run")
    line = one_error_line(result, "producer")
    assert "is a directory" in line
    assert "no such file" not in line


def test_benchmarks_help_names_the_command_users_type():
    result = python_m("benchmarks", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m benchmarks"), result.stdout[:80]
    unknown = python_m("benchmarks", "nosuchbench")
    assert "choose from" in one_error_line(unknown, "python -m benchmarks", status=2)


# --- training data -------------------------------------------------------------------------------

COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]


def write_creditcard_csv(path: Path, rows: int, fraud_rows: set[int]) -> Path:
    rng = random.Random(7)
    lines = [",".join(COLUMNS)]
    for i in range(rows):
        values = [str(i), *(f"{rng.gauss(0, 1):.4f}" for _ in range(28)), f"{rng.random() * 100:.2f}"]
        lines.append(",".join([*values, "1" if i in fraud_rows else "0"]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_on_a_file_with_no_valid_rows_is_one_line(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("a,b\n1,2\n3,4\n")
    result = python_m("training", "--source", str(garbage), "--out", str(tmp_path / "out"))
    line = one_error_line(result, "training")
    assert "no valid rows" in line
    assert "creditcard.csv" in line
    assert "synthetic" in line


def test_training_on_a_csv_too_small_for_a_validation_split_with_fraud_explains_why(tmp_path):
    # GIVEN a well-formed creditcard.csv whose only 2 fraud rows cannot reach the validation split
    small = write_creditcard_csv(tmp_path / "small.csv", 1200, fraud_rows={5, 1100})
    result = python_m("training", "--source", str(small), "--out", str(tmp_path / "out"))
    # THEN one line says the validation split lacks fraud and what to use instead
    line = one_error_line(result, "training")
    assert "validation" in line
    assert "creditcard.csv" in line or "fraud rows" in line
    assert "F1 is undefined" not in line


def test_training_on_too_few_synthetic_rows_for_fraud_in_validation_says_use_more_rows(tmp_path):
    # GIVEN the smallest synthetic set allowed: ~0.17 % fraud of 1000 rows is 2 rows, too few for the
    # stratified split to put one in validation, where the fraud threshold is chosen
    result = python_m("training", "--source", "synthetic", "--rows", "1000", "--out", str(tmp_path / "out"))
    line = one_error_line(result, "training")
    assert "leave the validation split with 0" in line
    assert line.endswith("use more --rows")


def test_training_with_a_directory_as_source_says_it_is_a_directory(tmp_path):
    result = python_m("training", "--source", str(tmp_path))
    line = one_error_line(result, "python -m training", status=2)
    assert "is a directory" in line


# --- the CDK app -----------------------------------------------------------------------------------


def test_a_bad_context_value_is_one_line_from_the_cdk_app(tmp_path):
    # GIVEN `-c vpcMaxAzs=9`, passed to the app as the CDK CLI does (CDK_CONTEXT_JSON)
    env = {"CDK_CONTEXT_JSON": '{"vpcMaxAzs": "9"}', "CDK_OUTDIR": str(tmp_path)}
    result = run([sys.executable, "app.py"], env=env, timeout=300)
    # THEN the whole of stderr is the ConfigError's one line, exit 1
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cdk app: error: cdk context 'vpcMaxAzs' = '9' is not valid: only 2 here: the stack is "
        "environment-agnostic (no account or Region at synth), and the CDK gives such a stack's VPC 2 AZs "
        "whatever vpcMaxAzs says (VpcProps.maxAzs); fix the -c option or cdk.json (every key: docs/deploy.md)"
    ]


@pytest.mark.infra
def test_make_synth_with_a_bad_context_value_shows_that_line_and_no_banner():
    # `make -o setup`: the suite runs after `make setup`; do not reinstall from inside a test.
    result = run(["make", "-o", "setup", "synth", "ARGS=-c vpcMaxAzs=9"], env={}, timeout=300)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "end-of-life" not in result.stderr, result.stderr
    # the recipe echo, our line, the CDK CLI's "Subprocess exited with error 1", make's "Error 1"
    ours = [line for line in lines if line.startswith("cdk app: error:")]
    assert len(ours) == 1
    assert "vpcMaxAzs" in ours[0]
    assert len(lines) <= 4, lines


# --- Ctrl-C on --keep ------------------------------------------------------------------------------


def _interrupt_when_kept(
    args: list[str], tmp_path: Path, *, stop: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Start `args` in its own process group, Ctrl-C it (SIGINT to the group, as a terminal does;
    or `stop(pid)`) once the demo says it keeps running, and return (exit code, all output)."""
    log = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if k not in SUB_MAKE_VARIABLES} | MAKE_ENV
    env.pop("REDIS_URL", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 240
        while "Everything is still running" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.5)
        if stop is None:
            os.killpg(process.pid, signal.SIGINT)
        else:
            stop(process.pid)
        try:  # stopping Redis, moto and the trigger takes ~2 s idle; far longer on a loaded machine
            status = process.wait(240)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"still running 240 s after Ctrl-C:\n{log.read_text()[-3000:]}")
    return status, log.read_text()


@pytest.mark.e2e
def test_ctrl_c_on_demo_keep_ends_cleanly_with_status_0(tmp_path):
    work = str(tmp_path / "demo")
    status, output = _interrupt_when_kept(
        [sys.executable, "-m", "demo", "--keep", "--count", "50", "--work-dir", work], tmp_path
    )
    assert status == 0, output
    assert "Traceback" not in output, output
    assert "interrupted" not in output, output


@pytest.mark.e2e
def test_sigterm_on_demo_keep_stops_what_it_started(tmp_path):
    # GIVEN a kept demo, WHEN only its own process gets SIGTERM (as from `kill` or `timeout`)
    work = tmp_path / "demo"
    urls = []

    def terminate(pid: int) -> None:
        urls.append((work / "run" / "redis.url").read_text().strip())
        redis.Redis.from_url(urls[0], socket_connect_timeout=2).ping()  # up while kept
        os.kill(pid, signal.SIGTERM)

    status, output = _interrupt_when_kept(
        [sys.executable, "-m", "demo", "--keep", "--count", "50", "--work-dir", str(work)],
        tmp_path,
        stop=terminate,
    )
    # THEN it stops as on Ctrl-C: status 0, and its Redis is gone (it used to outlive the demo)
    assert status == 0, output
    assert "stopping (SIGTERM)" in output, output
    assert "Traceback" not in output, output
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(urls[0], socket_connect_timeout=2).ping()


@pytest.mark.e2e
def test_ctrl_c_on_make_demo_keep_shows_no_make_error(tmp_path):
    work = str(tmp_path / "demo")
    status, output = _interrupt_when_kept(
        ["make", "-o", "setup-demo", "demo", f"ARGS=--keep --count 50 --work-dir {work}"], tmp_path
    )
    # make itself got the SIGINT too: it dies of it (-2) silently; before, it printed "Error 130"
    assert "Error 130" not in output, output
    assert "Traceback" not in output, output
    assert status in (0, -signal.SIGINT), (status, output)


@pytest.mark.parametrize("module", ["demo.cli", "producer.cli"])
def test_no_option_type_can_show_its_function_name(module):
    # argparse prints "invalid <type.__name__> value" when a type= raises ValueError/TypeError; a
    # private helper must raise ArgumentTypeError (shown as written) for any text instead.
    import argparse
    import importlib

    parser = importlib.import_module(module).build_parser()
    private = [a for a in parser._actions if callable(a.type) and a.type.__name__.startswith("_")]
    assert private, "nothing to check: the parser has no helper types"
    for action in private:
        for text in ("x", "", "-1", "1e999", "nan"):
            with contextlib.suppress(argparse.ArgumentTypeError):
                action.type(text)
