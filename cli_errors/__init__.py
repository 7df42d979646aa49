"""One clear line for the user's mistakes, a traceback only for ours.

Every command a user runs (`python -m demo|producer|training|benchmarks|grafana.render`, the CDK app)
wraps its `main()` in `run(prog, body)`: a `UserError` (bad input, a Redis that cannot be used, data
that cannot train a model, a bad `-c` value) ends the run with

    <prog>: error: <what is wrong>; <what to do>

on stderr and a non-zero exit code; Ctrl-C ends it with 130 and one line; anything else is a bug
in this project and keeps its traceback. Each CLI decides what counts as the user's mistake (it
knows where the input came from) and raises `UserError` for exactly that.

Stdlib only and importing nothing from the project, so any package can use it without a cycle.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for a bad option
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class UserError(Exception):
    """A problem the user can fix: printed as one line with what to do, never as a traceback."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status

    def line(self, prog: str) -> str:
        text = " ".join(self.message.split())  # one line, whatever the cause's message looked like
        if self.hint:
            text = f"{text.rstrip('.')}; {self.hint}"
        return f"{prog}: error: {text}"


def invalid_redis_url(name: str, hint: str = "") -> UserError:
    """For a Redis URL redis-py cannot parse. Neither the URL nor the parser's message is shown: the
    message can quote part of the password (an unencoded `/`, `#` or `?` in it ends the host early)."""
    how = "write it as redis://[user:password@]host:port/db (rediss:// for TLS), percent-encoding / # ? @ :"
    return UserError(
        f"{name} is not a valid Redis URL (not shown: it may hold a password)",
        hint=f"{how} in the password" + (f"; {hint}" if hint else ""),
    )


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Call `body`; return its exit code (None = 0), or report a UserError / Ctrl-C as one line."""
    try:
        status = body()
    except UserError as exc:
        sys.stdout.flush()
        print(exc.line(prog), file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\n{prog}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return 0 if status is None else int(status)


# argparse names a failing `type=` by its __name__ ("invalid _positive_int value"): these raise
# ArgumentTypeError, whose message argparse shows as written.


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_whole_number(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of at least 1")
    return value


def non_negative_whole_number(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def rate_or_max(text: str) -> float | None:
    """Records per second, or `max` (None: as fast as the stream accepts)."""
    if text.strip().lower() == "max":
        return None
    try:
        return positive_number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of records per second or 'max'"
        ) from None
