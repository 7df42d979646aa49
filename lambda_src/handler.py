"""The container's entry point (CMD `handler.handler`); the function itself is `fraud_scorer.entry`,
so the local pipeline and the benchmarks import the installed package instead of this file."""

from fraud_scorer.entry import handler, reset_container_state

__all__ = ["handler", "reset_container_state"]
