"""Cost presets: `-c costPreset=default|lean` picks a set of context defaults (docs/cost.md).

A preset only changes *defaults*: a key given with `-c` (or in cdk.json) always wins; a key left unset
takes the preset's value, and a key the preset does not name keeps the code's default. So
`-c costPreset=lean -c streamMode=on-demand` is the lean preset with an on-demand stream.

Each value is an ordinary context value, validated by the same reader as a `-c` value would be. The
idle cost of each preset is worked out line by line in docs/cost.md; tests/infra/test_cost.py checks
every line of that table against the synthesized template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stacks.context import ContextReader

PRESET_KEY = "costPreset"

PRESETS: dict[str, Mapping[str, Any]] = {
    # The code's defaults: interface endpoints in one AZ, on-demand stream, Grafana 0.25 vCPU / 1 GB
    # behind a load balancer, both models on one ml.t2.medium (stacks/models/config.py).
    "default": {},
    # Light load, lowest idle cost: one NAT instance instead of six interface endpoints (private
    # subnets get a route out), one provisioned shard (1 MB/s, 1,000 records/s in), the smallest
    # Fargate sizes Grafana and Redis run on, and Grafana on its task's own public IP instead of a
    # load balancer (plain HTTP to one address at most; a certificate needs grafanaAccess=load-balancer).
    "lean": {
        "grafanaAccess": "public-ip",
        "vpcEgress": "nat-instance",
        "streamMode": "provisioned",
        "streamShardCount": 1,
        "grafanaCpu": 256,
        "grafanaMemoryMb": 512,
        "redisCpu": 256,
        "redisMemoryMb": 1024,
    },
}


def preset_name(ctx: ContextReader) -> str:
    return ctx.choice(PRESET_KEY, "default", PRESETS)


def with_preset(ctx: ContextReader) -> ContextReader:
    """A reader that answers unset keys from the chosen preset."""
    preset = PRESETS[preset_name(ctx)]

    def lookup(key: str) -> Any:
        value = ctx.raw(key)
        return preset.get(key) if value is None else value

    return ContextReader(lookup)
