"""`python -m demo`'s options: a bad value is one line from argparse, before anything starts."""

from __future__ import annotations

import pytest

from demo.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], "argument --seed: -1 is negative"),
        (["--seed", "forty"], "argument --seed: 'forty' is not a whole number"),
    ],
)
def test_a_bad_seed_is_one_line_and_a_usage_exit(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"python -m demo: error: {message}"
