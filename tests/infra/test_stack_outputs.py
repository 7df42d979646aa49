"""The stack's outputs are the contract in contracts/stack_outputs.py, each documented."""

from __future__ import annotations

import re

from contracts import stack_outputs
from tests.infra.synth import REPO_ROOT

OUTPUT_NAMES = {
    value for name, value in vars(stack_outputs).items() if name.isupper() and name != "DEFAULT_STACK_NAME"
}


def test_the_template_has_exactly_the_contracts_outputs(default_synth):
    assert set(default_synth.template_json["Outputs"]) == OUTPUT_NAMES


def test_every_output_is_documented_in_the_architecture_page():
    page = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = page.split("## Stack outputs", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (.+?) \|", section, re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}

    assert documented == OUTPUT_NAMES
