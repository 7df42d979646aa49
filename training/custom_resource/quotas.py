"""Check SageMaker's per-instance-type Service Quotas before any job starts.

New accounts often have 0 instances of a type for training, transform or endpoint usage; without this
check that surfaces as `ResourceLimitExceeded` minutes into the deployment, after the data has been
prepared. SageMaker names these quotas `<instance type> for <training job|transform job|endpoint>
usage` (the name its own ResourceLimitExceeded message quotes, e.g. "The account-level service limit
'ml.m5.large for endpoint usage' is 0 Instances"); their quota codes are opaque, so they are found by
name. ListServiceQuotas returns only quotas with an applied value; the others are read from
ListAWSDefaultServiceQuotas.

The check compares the quota with what this deployment needs at once. It cannot see instances other
workloads in the account already use, so ResourceLimitExceeded stays possible; SageMaker's own message
names the quota then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

SERVICE_CODE = "sagemaker"
USAGES = ("training job", "transform job", "endpoint")


@dataclass(frozen=True)
class Need:
    instance_type: str
    usage: str  # one of USAGES
    count: int

    @property
    def quota_name(self) -> str:
        return f"{self.instance_type} for {self.usage} usage"

    def as_property(self) -> dict[str, str]:
        return {"InstanceType": self.instance_type, "Usage": self.usage, "Count": str(self.count)}

    @classmethod
    def from_property(cls, value: dict) -> Need:
        usage = value["Usage"]
        if usage not in USAGES:
            raise ValueError(f"unknown quota usage {usage!r}")
        return cls(value["InstanceType"], usage, int(value["Count"]))


class QuotaTooLow(Exception):
    """The deployment needs more instances of a type than the account's quota allows."""


def merge(needs: Iterable[Need]) -> list[Need]:
    """One need per quota: counts of the same instance type and usage add up."""
    total: dict[tuple[str, str], int] = {}
    for need in needs:
        key = (need.instance_type, need.usage)
        total[key] = total.get(key, 0) + need.count
    return [Need(t, u, c) for (t, u), c in sorted(total.items())]


def _quotas(client, operation: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for page in client.get_paginator(operation).paginate(ServiceCode=SERVICE_CODE):
        for quota in page.get("Quotas", []):
            found[quota["QuotaName"]] = quota
    return found


def check(client, needs: Iterable[Need], *, region: str = "") -> None:
    """Raise QuotaTooLow naming every quota that is too low and how to raise it."""
    needs = merge(needs)
    if not needs:
        return
    names = {need.quota_name for need in needs}
    quotas = _quotas(client, "list_service_quotas")
    if names - set(quotas):
        defaults = _quotas(client, "list_aws_default_service_quotas")
        quotas.update({name: q for name, q in defaults.items() if name not in quotas})
    problems = []
    for need in needs:
        quota = quotas.get(need.quota_name)
        if quota is None:
            # Not every instance type exists in every region; SageMaker will say so if it matters.
            logger.warning("no Service Quotas entry named %r; not checked", need.quota_name)
            continue
        value = float(quota.get("Value", 0))
        logger.info("quota %r = %g (needed %d)", need.quota_name, value, need.count)
        if value < need.count:
            code = quota.get("QuotaCode", "<quota code>")
            problems.append(
                f"'{need.quota_name}' (quota code {code}) is {value:g}, this deployment needs {need.count}: "
                f"aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} "
                f"--quota-code {code} --desired-value {need.count}"
                + (f" --region {region}" if region else "")
            )
    if problems:
        raise QuotaTooLow(
            "SageMaker Service Quotas are too low for this deployment (nothing was started): "
            + "; ".join(problems)
            + ". Request the increase in the Service Quotas console (AWS services > Amazon SageMaker, "
            "search the quota name) or with the command shown, or choose instance types the account "
            "has quota for (see docs/deploy.md, Quotas); then deploy again."
        )
