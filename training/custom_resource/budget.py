"""The training custom resource's time budget, shared by the CDK construct and the runtime.

CloudFormation waits at most `ServiceTimeout` for a custom resource: "an integer from 1 to 3600. The
default value is 3600 seconds (1 hour)" (AWS::CloudFormation::CustomResource). Everything the resource
does must end before that, or CloudFormation gives up while SageMaker jobs keep running. So:

    preparation (the on_event Lambda's timeout)
  + training    (each job's MaxRuntimeInSeconds; both jobs run in parallel)
  + scoring     (the batch transforms; they have no run-time limit of their own, so is_complete
                 stops them at the deadline)
  = JOB_DEADLINE_S, measured from the start of on_event and enforced by is_complete, which stops
    every job still running and fails the deployment with a clear message;
  + one poll interval and one is_complete run (the deadline is noticed at the next poll)
  <= PROVIDER_TOTAL_TIMEOUT_S (the CDK Provider framework's own limit)
  <  SERVICE_TIMEOUT_S, with MARGIN_S for the framework's response to reach CloudFormation.

The components are maxima; the deadline is shared, so time a step does not use is left to the next.
Typical run (docs/training.md): preparation ~5 min, training ~8 min, scoring ~7 min.
"""

from __future__ import annotations

SERVICE_TIMEOUT_S = 3600  # CloudFormation's maximum (and default) for a custom resource
MARGIN_S = 300

# Below the CDK Provider framework's own functions' 900 s: its onEvent function calls ours synchronously,
# and if both hit 900 s the framework dies first and nobody answers CloudFormation until the
# ServiceTimeout ("It is recommended not to exceed a 14 minutes timeout, since all framework functions
# are configured to time out after 15 minutes": aws-cdk-lib custom_resources README, *Timeouts*).
FRAMEWORK_FUNCTION_TIMEOUT_S = 900
PREPARE_TIMEOUT_S = FRAMEWORK_FUNCTION_TIMEOUT_S - 60
TRAINING_MAX_RUNTIME_S = 1500
SCORING_BUDGET_S = 600
JOB_DEADLINE_S = PREPARE_TIMEOUT_S + TRAINING_MAX_RUNTIME_S + SCORING_BUDGET_S

POLL_INTERVAL_S = 60
POLL_TIMEOUT_S = 180  # is_complete: describe four jobs, read ~0.2 M scores, compute thresholds
PROVIDER_TOTAL_TIMEOUT_S = SERVICE_TIMEOUT_S - MARGIN_S

if JOB_DEADLINE_S + POLL_INTERVAL_S + POLL_TIMEOUT_S > PROVIDER_TOTAL_TIMEOUT_S:
    raise ValueError("the training budget does not fit the provider's total timeout")
if PROVIDER_TOTAL_TIMEOUT_S % POLL_INTERVAL_S:
    raise ValueError("the provider's total timeout must be a whole number of poll intervals")
