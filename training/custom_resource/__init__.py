"""Runtime of the training custom resource (a plain zip Lambda: standard library + boto3 only)."""
