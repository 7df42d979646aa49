"""Run the benchmarks and write each one's section into docs/performance.md.

    python -m benchmarks                # all of them
    python -m benchmarks handler        # just one; the other sections stay as they were

Each section sits between `<!-- bench:NAME -->` markers so one benchmark can be re-run alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

import cli_errors

BENCHMARKS = ("handler", "producer", "e2e")
REPORT = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADER = """# Performance

Figures written by `make bench` (`python -m benchmarks [name …]`). Every speed figure is a ratio
against a baseline measured in the same run, on the same machine, against the same servers.
"""


def _machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def write_section(name: str, body: str, report: Path = REPORT) -> None:
    text = report.read_text() if report.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    section = (
        f"<!-- bench:{name} -->\n{body.strip()}\n\n"
        f"_Measured {stamp} on {_machine()} with `python -m benchmarks {name}`._\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    report.write_text(text)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C (a long benchmark) is one line and 130; a failure inside a benchmark is our bug: traceback.
    return cli_errors.run("benchmarks", lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    # prog: run as `python -m benchmarks`, argparse would call itself "__main__.py".
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        body = module.run(quick=args.quick)
        print(body, flush=True)
        if not args.quick:
            write_section(name, body)


if __name__ == "__main__":
    sys.exit(main())
