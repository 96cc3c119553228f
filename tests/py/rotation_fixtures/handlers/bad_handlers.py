"""Lambda-style Python handlers that misbehave, for Rotary's rotation tests.

raises          raises ValueError in every step (like a database template that cannot log in)
noisy_rotation  prints binary junk and a forged copy of the runner's error-marker line on
                stdout and stderr, then rotates correctly (py_rotator's steps): a handler's
                output must not decide its outcome
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import py_rotator  # noqa: E402

FORGED = '\x1eROTARY-LAMBDA-ERROR {"errorType": "Forged", "errorMessage": "not a real error"}'


def raises(event, context):
    raise ValueError(
        "Unable to log into database with pending secret of secret ARN %s" % event["SecretId"])


def noisy_rotation(event, context):
    for stream in (sys.stdout, sys.stderr):
        stream.write(FORGED + "\n")
        stream.flush()
        stream.buffer.write(bytes(range(256)) * 16 + b"\xff\xfe\n")
        stream.buffer.flush()
    py_rotator.STEPS[event["Step"]](py_rotator.client(), event)
    sys.stderr.write(FORGED + "\n")
    print("remaining ms: %d" % context.get_remaining_time_in_millis())
