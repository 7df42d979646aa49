"""The one context reader's rules, each once: unset, booleans, numbers, strings, choices."""

from __future__ import annotations

import json

import pytest

from stacks.context import ConfigError, ContextReader
from tests.infra.synth import REPO_ROOT


def reader(**values) -> ContextReader:
    return ContextReader.from_mapping(values)


@pytest.mark.parametrize("unset", [None, ""])
def test_missing_null_and_empty_string_all_mean_the_default(unset):
    ctx = reader(key=unset)

    assert ctx.integer("key", 7, minimum=0, maximum=9) == 7
    assert ctx.boolean("key", True) is True
    assert ctx.number("key", 0.5, minimum=0, maximum=1) == 0.5
    assert ctx.string("key", "x") == "x"
    assert ctx.optional_integer("key", minimum=0, maximum=9) is None
    assert ctx.integer("absent", 3, minimum=0, maximum=9) == 3


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, True), (False, False), ("true", True), ("YES", True), ("1", True), ("on", True)]
    + [("false", False), ("No", False), ("0", False), ("off", False), (" true ", True)],
)
def test_booleans_accept_json_booleans_and_the_same_words_everywhere(given, expected):
    assert reader(flag=given).boolean("flag", not expected) is expected


@pytest.mark.parametrize("bad", ["maybe", 1, 0, "2", ["true"]])
def test_anything_else_is_not_a_boolean(bad):
    with pytest.raises(ConfigError, match="'flag'"):
        reader(flag=bad).boolean("flag", False)


@pytest.mark.parametrize(("given", "expected"), [(5, 5), ("5", 5), (" 5 ", 5), ("-2", -2)])
def test_integers_accept_numbers_and_their_text(given, expected):
    assert reader(n=given).integer("n", 0, minimum=-5, maximum=5) == expected


@pytest.mark.parametrize("bad", [2.5, "2.5", True, "ten", 6, "6"])
def test_integers_refuse_fractions_booleans_words_and_out_of_range(bad):
    with pytest.raises(ConfigError, match="an integer from -5 to 5"):
        reader(n=bad).integer("n", 0, minimum=-5, maximum=5)


@pytest.mark.parametrize(("given", "expected"), [(0.25, 0.25), ("0.25", 0.25), (1, 1.0), ("1e-1", 0.1)])
def test_numbers_accept_numbers_and_their_text(given, expected):
    assert reader(x=given).number("x", 0.0, minimum=0, maximum=1) == expected


@pytest.mark.parametrize("bad", ["nan", "inf", True, "half", 1.5])
def test_numbers_refuse_non_finite_booleans_words_and_out_of_range(bad):
    with pytest.raises(ConfigError, match="'x'"):
        reader(x=bad).number("x", 0.0, minimum=0, maximum=1)


def test_strings_are_checked_against_their_pattern_and_integer_choices_accept_text():
    assert reader(s="abc").string("s", "", pattern=r"[a-z]+") == "abc"
    with pytest.raises(ConfigError, match="'s'"):
        reader(s="ABC").string("s", "", pattern=r"[a-z]+")
    assert reader(c="2048").choice("c", 1024, (1024, 2048)) == 2048
    with pytest.raises(ConfigError, match="one of 1024, 2048"):
        reader(c="3000").choice("c", 1024, (1024, 2048))


def test_cdk_json_holds_no_defaults_only_the_cdk_feature_flags():
    # Each default lives once, in the code that reads the key.
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]

    assert [key for key in context if not key.startswith("@")] == []
