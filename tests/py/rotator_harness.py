"""What the built-in rotator tests (test_rotator_mysql.py, test_rotator_redis.py) share: the
module's Rotary server and clients as fixtures, starting a rotation and waiting for its
outcome, reading a value, and the "database down, then up" check.

The zero-downtime loop is in zero_downtime.py; the throwaway databases in db_server.py and
its subclasses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import rotary_testlib as lib
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import Rotary  # noqa: E402

# Fast retries: a failed attempt is retried once, a second later.
MODULE_ENV = {"ROTARY_ROTATION_MAX_ATTEMPTS": "2", "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}


def rotary_fixtures(prefix: str, label: str):
    """Module fixtures `<prefix>srv` (a Rotary server with MODULE_ENV), `<prefix>sm` (its
    boto3 client) and `rot` (its Rotary API). Assign the result to three module names so
    pytest finds them: `msrv, msm, rot = rotary_fixtures("m", "rotator-mysql")`."""

    @pytest.fixture(scope="module", name=f"{prefix}srv")
    def srv(tmp_path_factory):
        server = lib.Server(tmp_path_factory.mktemp(label), name=label, env=MODULE_ENV)
        server.start()
        yield server
        server.stop()

    @pytest.fixture(scope="module", name=f"{prefix}sm")
    def sm(request):
        return request.getfixturevalue(f"{prefix}srv").client()

    @pytest.fixture(scope="module", name="rot")
    def rot(request):
        return Rotary(request.getfixturevalue(f"{prefix}srv"))

    return srv, sm, rot


def rotate(sm, rot, name, fn, timeout=60.0, outcomes=("Succeeded", "Failed")):
    """RotateSecret with `fn` (30-day schedule); waits for one of `outcomes`."""
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=fn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    return token, rot.wait_outcome(name, token, outcomes=outcomes, timeout=timeout)


def value(sm, name, stage="AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def check_down_then_up(own_server, db, fn: str, secret: dict, logs_in) -> None:
    """With the database `db` stopped, a rotation with `fn` of `secret` fails at setSecret
    (retrying, the error names the port, AWSCURRENT unchanged); once `db` is back, the retry
    completes: the new password logs in (`logs_in(user, password)`), the old one does not.
    `own_server` must retry fast (ROTARY_ROTATION_RETRY_BASE_SECONDS=1)."""
    sm, rot = own_server.client(), Rotary(own_server)
    name = unique_name("downup")
    user, old = secret["username"], secret["password"]
    sm.create_secret(Name=name, SecretString=json.dumps(secret))
    db.stop()
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=fn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    recs = rot.wait_history(name, lambda rs: any(r["Outcome"] == "Retrying" for r in rs),
                            timeout=30, what="a failed first attempt")
    first = [r for r in recs if r["Outcome"] == "Retrying"][-1]
    assert first["FailedStep"] == "setSecret", first
    assert f":{db.port}" in first["Error"] and "cannot reach" in first["Error"], first
    assert sm.get_secret_value(SecretId=name)["SecretString"].count(old) == 1

    db.start()
    rec = rot.wait_outcome(name, token, outcomes=("Succeeded", "Failed"), timeout=60)
    assert rec["Outcome"] == "Succeeded" and rec["Attempt"] >= 2, rec
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"]
    assert logs_in(user, new) and not logs_in(user, old)
