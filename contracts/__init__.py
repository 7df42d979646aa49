"""The project's contracts, one home each: imported by the scorer, the producer, training, the
dashboards and the infrastructure (docs/architecture.md).

Standard library only: the same files are shipped into the scorer's image and the training
custom resource's Lambda at build time, never copied by hand.
"""
