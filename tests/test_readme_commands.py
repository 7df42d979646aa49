"""The README's commands work as written from a clone (issue 15).

`test_readme_shell_command` walks every ```bash block of README.md and runs each command, joined
across `\\` continuations, with its comment removed. What is run, and why, is decided by RULES below,
first match wins; a command no rule covers fails the test, so a new README command has to be
classified here:

* blocks that deploy to or call AWS, or need Docker, are skipped whole (their commands depend on
  each other): `cdk deploy|bootstrap|destroy|gc`, `aws …`, `docker …`;
* commands with a `<placeholder>` are templates the reader fills in (the demo prints the real one);
* long or endless runs get the cheapest variant that still executes the same entry point:
  the producer with `--dry-run --count 5` (the real run needs a deployed stack; a dry run prints the
  events instead of sending them), `make test` as `make -n` (it would run this suite inside itself),
  `make demo ARGS="--keep"` as `make -n` (endless; Ctrl-C on it is tested in test_cli_errors.py);
* `make demo` runs for real with fewer transactions (e2e marker).

A file the reader is told to download (creditcard.csv) is replaced by a small file of the same shape.
`test_docs_run_python_from_the_venv` checks that every `python -m` in README.md and docs/*.md is
written `.venv/bin/python -m`, which works without activating the virtualenv.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
VENV_PYTHON = ".venv/bin/python"
ENV = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "PYTHONDONTWRITEBYTECODE": "1"}

SKIP_BLOCK = {
    "cdk deploy": "deploys to AWS",
    "cdk bootstrap": "deploys to AWS",
    "cdk destroy": "changes an AWS account",
    "cdk gc": "changes an AWS account",
    "aws ": "calls AWS",
    "docker ": "needs Docker",
}


def shell_blocks(text: str) -> list[list[str]]:
    """The ```bash blocks, each as its commands (continuations joined, comments dropped)."""
    blocks = re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M)
    result = []
    for block in blocks:
        commands = []
        for logical in block.replace("\\\n", " ").splitlines():
            words = shlex.split(logical, comments=True)
            if words:
                commands.append(shlex.join(words))
        result.append(commands)
    return result


@dataclass(frozen=True)
class Plan:
    argv: list[str] | None  # None: skipped
    why: str
    e2e: bool = False
    timeout: float = 600


def _producer(words: list[str]) -> Plan:
    return Plan(
        [*words, "--dry-run", "--count", "5"], "needs a deployed stack: run as a dry run", timeout=600
    )


def _make(words: list[str]) -> Plan:
    target = words[1] if len(words) > 1 else ""
    args = " ".join(words[2:])
    if target == "test":
        return Plan(["make", "-n", "test"], "would run this suite inside itself: make -n checks the recipe")
    if target == "demo" and "--keep" in args:
        return Plan(["make", "-n", *words[1:]], "runs until Ctrl-C (tested in test_cli_errors.py): make -n")
    if target == "demo" and not args:
        # `-o setup-demo`: the suite runs after setup; a test must not reinstall the shared .venv.
        return Plan(
            ["make", "-o", "setup-demo", "demo", "ARGS=--count 300"], "the demo, fewer records", e2e=True
        )
    return Plan(None, "")


RULES: list[tuple[Callable[[list[str]], bool], Callable[[list[str]], Plan]]] = [
    (
        lambda w: any(re.search(r"<\w+>", word) for word in w),
        lambda w: Plan(None, "a template with <placeholders>"),
    ),
    (lambda w: w[:3] == [VENV_PYTHON, "-m", "producer"], _producer),
    (lambda w: w[0] == "make", _make),
]


def plan(command: str) -> Plan:
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value prefixes
        words = words[1:]
    for applies, make_plan in RULES:
        if words and applies(words):
            return make_plan(words)
    return Plan(None, "")


def _cases():
    cases = []
    for number, block in enumerate(shell_blocks(README.read_text()), start=1):
        skip = next((why for marker, why in SKIP_BLOCK.items() if any(marker in c for c in block)), None)
        for command in block:
            marks = [pytest.mark.skip(reason=f"block {number}: {skip}")] if skip else []
            if not skip and plan(command).e2e:
                marks.append(pytest.mark.e2e)
            cases.append(pytest.param(command, marks=marks, id=f"block{number}:{command[:60]}"))
    return cases


def write_creditcard_csv(path: Path, rows: int = 300) -> None:
    rng = random.Random(3)
    header = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    lines = [",".join(header)]
    for i in range(rows):
        values = [str(i), *(f"{rng.gauss(0, 1):.4f}" for _ in range(28)), f"{rng.random() * 100:.2f}"]
        lines.append(",".join([*values, "1" if i % 100 == 7 else "0"]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("command", _cases())
def test_readme_shell_command(command, tmp_path):
    how = plan(command)
    if how.argv is None and how.why:
        pytest.skip(how.why)
    assert how.argv is not None, f"README command not classified in tests/test_readme_commands.py: {command}"
    argv = [str(REPO / VENV_PYTHON) if word == VENV_PYTHON else word for word in how.argv]
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(ENV)
    for word in shlex.split(command):
        if m := re.fullmatch(r"([A-Z_]+)=(.*)", word):
            env[m.group(1)] = m.group(2)
        else:
            break
    cwd = REPO
    if "creditcard.csv" in argv:  # the dataset the README says where to download: same shape, small
        cwd = tmp_path
        write_creditcard_csv(tmp_path / "creditcard.csv")
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=how.timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command}\n-> {argv} ({how.why})\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr


def test_every_readme_command_is_classified():
    unclassified = [
        command
        for block in shell_blocks(README.read_text())
        if not any(marker in c for marker in SKIP_BLOCK for c in block)
        for command in block
        if plan(command).argv is None and not plan(command).why
    ]
    assert unclassified == []


# Written by tools, not by hand: they record the command that produced them.
GENERATED_DOCS = {"performance.md": "`make bench` writes it", "model-report.md": "`make train` writes it"}


def test_docs_run_python_from_the_venv():
    bare = []
    for path in [README, *sorted((REPO / "docs").glob("*.md"))]:
        if path.name in GENERATED_DOCS:
            continue
        text = re.sub(r"^```mermaid\n.*?^```", "", path.read_text(), flags=re.S | re.M)  # node labels
        for number, line in enumerate(text.splitlines(), start=1):
            for match in re.finditer(r"(\S*?)python3? -m\b\s*(\S*)", line):  # also "-m" ending a line
                prefix, module = match.groups()
                if not prefix.endswith(".venv/bin/") and not module.startswith("…"):
                    bare.append(f"{path.name}:{number}: {line.strip()}")
    assert bare == [], "write `.venv/bin/python -m …` (works without activating the venv):\n" + "\n".join(
        bare
    )


def test_readme_says_where_to_get_creditcard_csv():
    text = README.read_text()
    assert "mlg-ulb/creditcardfraud" in text
    assert "s3://sagemaker-e2e-solutions/fraud-detection/creditcardfraud.zip" in text
