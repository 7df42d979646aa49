"""Grafana's section of the cdk.json context, read by `stacks.config.AppConfig`.

| key | default | meaning |
| --- | --- | --- |
| `grafanaAllowedCidr` | `""` (closed) | the only IPv4/IPv6 CIDR allowed to reach the Grafana load balancer |
| `grafanaCertificateArn` | `""` | an ACM certificate: HTTPS on 443 and HTTP redirected to it |
| `grafanaDomainName` | `""` | the certificate's name (a CNAME to the ALB); used in `GrafanaUrl` |
| `grafanaArchitecture` | `x86_64` | Fargate CPU architecture, and the platform the image is built for |
| `grafanaCpu`, `grafanaMemoryMb` | `512`, `1024` | Fargate task size |

The default CIDR is *nobody*: the admin login must not face the whole internet, and without a
certificate it travels as clear HTTP. Deploy with your own address, e.g.
`-c grafanaAllowedCidr=$(curl -s https://checkip.amazonaws.com)/32` (docs/grafana.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # stacks.config imports this module; keep the runtime import one-way.
    from stacks.config import ContextReader

GRAFANA_ARCHITECTURES = ("x86_64", "arm64")
# Fargate CPU units and the memory sizes each allows (MiB), for the sizes Grafana is sensible on.
_FARGATE_MEMORY = {256: (512, 1024, 2048), 512: (1024, 2048, 3072, 4096), 1024: (2048, 3072, 4096, 8192)}
_CERTIFICATE_ARN = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"
_DOMAIN = r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"


@dataclass(frozen=True)
class GrafanaConfig:
    allowed_cidr: str | None
    certificate_arn: str | None
    domain_name: str | None
    architecture: str
    cpu: int
    memory_mb: int
    log_retention_days: int

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def open_to_internet(self) -> bool:
        return self.allowed_cidr is not None and ipaddress.ip_network(self.allowed_cidr).prefixlen == 0

    @classmethod
    def from_context(cls, ctx: ContextReader) -> GrafanaConfig:
        from stacks.config import LOG_RETENTION_DAYS, ConfigError

        cidr = None
        if ctx.is_set("grafanaAllowedCidr"):
            raw = ctx.raw("grafanaAllowedCidr")
            try:
                # strict=False accepts "203.0.113.7/24"; the normalised network is what gets opened.
                cidr = str(ipaddress.ip_network(str(raw).strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(
                    "grafanaAllowedCidr", raw, "an IPv4 or IPv6 CIDR such as 203.0.113.7/32"
                ) from exc
        cpu = ctx.integer("grafanaCpu", 512, minimum=256, maximum=1024)
        if cpu not in _FARGATE_MEMORY:
            raise ConfigError("grafanaCpu", cpu, "one of " + ", ".join(map(str, _FARGATE_MEMORY)))
        memory_mb = ctx.integer("grafanaMemoryMb", 1024, minimum=512, maximum=8192)
        if memory_mb not in _FARGATE_MEMORY[cpu]:
            allowed = ", ".join(map(str, _FARGATE_MEMORY[cpu]))
            raise ConfigError("grafanaMemoryMb", memory_mb, f"for grafanaCpu={cpu} one of {allowed}")
        certificate_arn = ctx.optional_string(
            "grafanaCertificateArn", pattern=_CERTIFICATE_ARN, allowed="the ARN of an ACM certificate"
        )
        domain_name = ctx.optional_string(
            "grafanaDomainName", pattern=_DOMAIN, allowed="a DNS name such as grafana.example.com"
        )
        if domain_name is not None and certificate_arn is None:
            raise ConfigError("grafanaDomainName", domain_name, "only together with grafanaCertificateArn")
        # The app-wide log retention (also the scorer's), validated the same way.
        log_retention_days = ctx.integer("logRetentionDays", 30, minimum=1, maximum=2557)
        if log_retention_days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ConfigError("logRetentionDays", log_retention_days, "one of " + allowed)
        return cls(
            allowed_cidr=cidr,
            certificate_arn=certificate_arn,
            domain_name=domain_name,
            architecture=ctx.choice("grafanaArchitecture", "x86_64", GRAFANA_ARCHITECTURES),
            cpu=cpu,
            memory_mb=memory_mb,
            log_retention_days=log_retention_days,
        )
