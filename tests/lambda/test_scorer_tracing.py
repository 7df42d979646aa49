"""With tracing on (as in Lambda), the Powertools Tracer sends the invocation's subsegment to the
X-Ray daemon address; checked in a subprocess because the X-Ray SDK patches libraries globally."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
REPO = LAMBDA_SRC.parent
SCRIPT = """
import json
import time
import handler
from emulators.kinesis_events import kinesis_event
from emulators.lambda_context import LocalLambdaContext as Context

event = {"transaction_id": "traced", "timestamp": int(time.time() * 1000), "card_id": "c", "amount": 1.0,
         "features": [0.0] * 30}
print(json.dumps(handler.handler(kinesis_event([event]), Context())))
"""


def test_invocation_is_traced_when_running_in_lambda(scorer_env, redis_client):
    # GIVEN a UDP socket standing in for the X-Ray daemon, and Lambda's tracing environment
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(LAMBDA_SRC),
        "AWS_LAMBDA_FUNCTION_NAME": "fraud-scorer",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }

    # WHEN a fresh interpreter (a cold container) handles one batch
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=LAMBDA_SRC, env=env, capture_output=True, text=True
    )

    # THEN the batch was stored and a subsegment for the handler reached the daemon
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
    assert redis_client.json().get("txn:traced", "$.verdict") == ["legit"]
    names: list[str] = []
    try:
        while "## _score_batch" not in names:
            _header, _, body = daemon.recv(65536).decode().partition("\n")
            names.append(json.loads(body)["name"])
    except TimeoutError:
        pass  # the assertion below says what was (not) received
    finally:
        daemon.close()
    assert "## _score_batch" in names, names
