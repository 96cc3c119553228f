"""Built-in Redis rotator (`rotary-redis-single-user`) against a real redis-server started by
the tests.

The ACL user in the secret changes its own password (`ACL SETUSER <user> resetpass >new`, as
itself). Pass = a NEW connection AUTHs with the new password and no longer with the old one.
Also: a user without permission for ACL SETUSER, a missing key, Redis down during a
rotation, and 50 back-to-back rotations under a client that keeps AUTHing with AWSCURRENT
(figures written to tests/py/.perf-redis.json).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import redis

import redis_server
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import lambda_arn  # noqa: E402
from rotator_harness import check_down_then_up, rotary_fixtures, value  # noqa: E402
from rotator_harness import rotate as harness_rotate  # noqa: E402
from zero_downtime import record_perf, run_zero_downtime  # noqa: E402

pytestmark = pytest.mark.skipif(not redis_server.available(), reason="redis-server not installed")

REDIS = lambda_arn("rotary-redis-single-user")
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
PERF_FILE = Path(__file__).resolve().parent / ".perf-redis.json"


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rds(tmp_path_factory):
    srv = redis_server.RedisServer(tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.cleanup()


rsrv, rsm, rot = rotary_fixtures("r", "rotator-redis")


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def redis_user(rds, prefix="app", rules=()):
    user = f"{prefix}{unique_name('')[1:9]}"
    password = f"init-{unique_name('pw')[3:19]}"
    rds.add_user(user, password, *rules)
    return user, password


def redis_secret(rds, user, password, **extra) -> dict:
    return {"engine": "redis", "host": rds.host, "port": rds.port, "username": user,
            "password": password, **extra}


def rotate(sm, rot, name, **kw):
    return harness_rotate(sm, rot, name, REDIS, **kw)


def assert_succeeded(rec, sm, name):
    assert rec["Outcome"] == "Succeeded", json.dumps(rec, indent=1)
    assert [s["Step"] for s in rec["Steps"]] == STEPS, rec
    history = json.dumps(rec)
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        assert value(sm, name, stage)["password"] not in history, f"{stage} leaked"


# ------------------------------------------------------------------------------------------
# Rotation
# ------------------------------------------------------------------------------------------
def test_single_user_rotation_changes_the_acl_password(rds, rsrv, rsm, rot):
    user, old = redis_user(rds)
    name = unique_name("redis-single")
    # Port as a string, no `ssl` (TLS tried first, then plaintext), an extra member kept.
    orig = rsm.create_secret(Name=name, SecretString=json.dumps(
        redis_secret(rds, user, old, port=str(rds.port), team="cache")))["VersionId"]
    token, rec = rotate(rsm, rot, name)
    assert_succeeded(rec, rsm, name)
    new = value(rsm, name)
    assert new["username"] == user and new["team"] == "cache" and new["port"] == str(rds.port)
    assert len(new["password"]) == 32
    assert rds.can_auth(user, new["password"]), "the new password must AUTH"
    assert new["password"] not in rsrv.log_path.read_text(errors="replace"), "leaked to the log"
    assert not rds.can_auth(user, old), "the old password must stop working"
    prev = rsm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == orig and json.loads(prev["SecretString"])["password"] == old
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert "saved to the ACL file" in outputs["setSecret"], outputs
    # ACL SAVE wrote the new password's hash (and only the hash) to the ACL file.
    acl = rds.aclfile.read_text()
    assert "#" + hashlib.sha256(new["password"].encode()).hexdigest() in acl
    assert new["password"] not in acl

    _, rec2 = rotate(rsm, rot, name)
    assert_succeeded(rec2, rsm, name)
    newer = value(rsm, name)["password"]
    assert rds.can_auth(user, newer) and not rds.can_auth(user, new["password"])


def test_minimal_acl_user_rotates_in_memory(rds, rsm, rot):
    """The least a user needs: its own commands plus +acl|setuser (and +ping for testSecret).
    Without +acl|save the change is reported as in memory only."""
    user, old = redis_user(rds, "min", rules=("~app:*", "+get", "+set", "+ping",
                                              "+acl|setuser"))
    name = unique_name("redis-minimal")
    rsm.create_secret(Name=name, SecretString=json.dumps(redis_secret(rds, user, old, ssl=False)))
    _, rec = rotate(rsm, rot, name)
    assert_succeeded(rec, rsm, name)
    new = value(rsm, name)["password"]
    assert rds.can_auth(user, new) and not rds.can_auth(user, old)
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert "in memory only" in outputs["setSecret"], outputs


def test_user_without_acl_permission_fails_and_awscurrent_still_auths(rds, rsm, rot):
    user, old = redis_user(rds, "noacl", rules=("~*", "&*", "+@all", "-acl"))
    name = unique_name("redis-noacl")
    orig = rsm.create_secret(Name=name, SecretString=json.dumps(
        redis_secret(rds, user, old)))["VersionId"]
    _, rec = rotate(rsm, rot, name, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "setSecret", rec
    assert "NOPERM" in rec["Error"] and "+acl|setuser" in rec["Error"], rec
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig
    assert rds.can_auth(user, json.loads(got["SecretString"])["password"])
    assert old not in json.dumps(rot.history(name))


@pytest.mark.parametrize("missing", ["host", "username", "password"])
def test_missing_key_fails_naming_it(missing, rds, rsm, rot):
    user, old = redis_user(rds)
    secret = redis_secret(rds, user, old)
    del secret[missing]
    name = unique_name(f"redis-missing-{missing}")
    orig = rsm.create_secret(Name=name, SecretString=json.dumps(secret))["VersionId"]
    _, rec = rotate(rsm, rot, name, outcomes=("Retrying", "Failed"))
    # A configuration error: retrying cannot help, so the first attempt fails for good
    # (issue 10).
    assert rec["Outcome"] == "Failed" and rec["Attempt"] == 1, rec
    assert rec["FailedStep"] == "createSecret", rec
    assert f"{missing} key is missing from secret JSON" in rec["Error"], rec
    assert rsm.get_secret_value(SecretId=name)["VersionId"] == orig
    assert rds.can_auth(user, old)


def test_wrong_engine_is_refused(rds, rsm, rot):
    user, old = redis_user(rds)
    name = unique_name("redis-engine")
    rsm.create_secret(Name=name, SecretString=json.dumps(
        redis_secret(rds, user, old, engine="mysql")))
    _, rec = rotate(rsm, rot, name, outcomes=("Retrying", "Failed"))
    assert rec["Outcome"] == "Failed" and rec["FailedStep"] == "createSecret", rec
    assert "Database engine must be set to 'redis'" in rec["Error"], rec


def test_ssl_true_against_a_plain_server_fails_cleanly(rds, rsm, rot):
    user, old = redis_user(rds)
    name = unique_name("redis-ssl")
    rsm.create_secret(Name=name, SecretString=json.dumps(redis_secret(rds, user, old, ssl=True)))
    _, rec = rotate(rsm, rot, name, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "setSecret" and "cannot reach" in rec["Error"], rec
    assert "TLS failed" in rec["Error"] and "the port speaks plaintext" in rec["Error"], rec
    assert rds.can_auth(user, old)


# ------------------------------------------------------------------------------------------
# Redis down during a rotation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("own_server", [{"ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}],
                         indirect=True)
def test_redis_down_then_up_retry_completes(own_server, tmp_path):
    srv = redis_server.RedisServer(tmp_path / "redis-downup")
    srv.start()
    try:
        srv.add_user("downup", "downup-Pw-1")
        secret = {"host": srv.host, "port": srv.port, "username": "downup",
                  "password": "downup-Pw-1"}
        check_down_then_up(own_server, srv, REDIS, secret, srv.can_auth)
    finally:
        srv.cleanup()


# ------------------------------------------------------------------------------------------
# 50 rotations while a client keeps AUTHing with AWSCURRENT
# ------------------------------------------------------------------------------------------
def redis_login(v) -> tuple[bool, str | None]:
    """A new connection AUTHing with the secret's credentials, then PING."""
    c = redis.Redis(host=v["host"], port=int(v["port"]), username=v["username"],
                    password=v["password"], socket_timeout=5, socket_connect_timeout=5,
                    retry=redis_server.NO_RETRY)
    try:
        return c.ping() is True, None
    except redis.exceptions.RedisError as e:
        return False, str(e)
    finally:
        c.close()


def test_single_user_50_rotations_failures_recovered_by_retry(rsrv, rds, rsm, rot):
    """Single user: between setSecret and finishSecret Redis already has the new password and
    AWSCURRENT the old one. A client that re-reads AWSCURRENT and retries recovers from every
    failed AUTH when rotations do not outpace it (paced). Unpaced back-to-back rotations can
    outpace a 5-retry client; those figures are recorded, not asserted."""
    user, pw = redis_user(rds, "zs")
    name = unique_name("redis-loop")
    rsm.create_secret(Name=name, SecretString=json.dumps(redis_secret(rds, user, pw, ssl=False)))
    figures = run_zero_downtime(rsrv, name, REDIS, redis_login, retry=True, paced=True)
    record_perf(PERF_FILE, "single_user", {**figures, "server": f"Redis {rds.version}"})
    assert figures["login_attempts"] >= 50, figures
    assert figures["unrecovered"] == 0, figures
    assert figures["recovered_by_retry"] == figures["failed_logins"], figures
    recs = rot.history(name, max_results=100)
    assert len(recs) == 50 and all(r["Outcome"] == "Succeeded" for r in recs)
    assert rds.can_auth(user, value(rsm, name)["password"])

    # A secret keeps at most 100 versions: the unpaced run uses another user and secret.
    user, pw = redis_user(rds, "zu")
    name = unique_name("redis-loop-unpaced")
    rsm.create_secret(Name=name, SecretString=json.dumps(redis_secret(rds, user, pw, ssl=False)))
    unpaced = run_zero_downtime(rsrv, name, REDIS, redis_login, retry=True, paced=False)
    record_perf(PERF_FILE, "single_user_unpaced", {**unpaced, "server": f"Redis {rds.version}"})
    assert all(r["Outcome"] == "Succeeded" for r in rot.history(name, max_results=100))
    assert rds.can_auth(user, value(rsm, name)["password"])
