"""Which environment variables the provisioning files make Grafana expand (shared by the compose and
the ECS task-definition tests)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from grafana import PROVISIONING_DIR, PROVISIONING_TLS_DIR

# Grafana expands $VAR and ${VAR} in provisioning values ($$ is a literal dollar).
ENV_REFERENCE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def provisioning_files() -> list[Path]:
    return sorted([*PROVISIONING_DIR.rglob("*.yaml"), *PROVISIONING_TLS_DIR.rglob("*.yaml")])


def env_references(value: object) -> set[str]:
    """Variables referenced in the parsed YAML's string values (Grafana expands values, not comments)."""
    if isinstance(value, str):
        return {braced or bare for braced, bare in ENV_REFERENCE.findall(value)}
    if isinstance(value, dict):
        return set().union(set(), *(env_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(env_references(v) for v in value))
    return set()


def referenced_variables() -> set[str]:
    return set().union(*(env_references(yaml.safe_load(path.read_text())) for path in provisioning_files()))
