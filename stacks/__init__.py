"""The CDK app's stack and its constructs (one job each)."""
