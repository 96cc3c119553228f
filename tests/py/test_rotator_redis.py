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
import multiprocessing
import sys
import time
from pathlib import Path

import pytest
import redis

import redis_server
import rotary_testlib as lib
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import Rotary, lambda_arn, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not redis_server.available(), reason="redis-server not installed")

REDIS = lambda_arn("rotary-redis-single-user")
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
PERF_FILE = Path(__file__).resolve().parent / ".perf-redis.json"
MODULE_ENV = {"ROTARY_ROTATION_MAX_ATTEMPTS": "2", "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rds(tmp_path_factory):
    srv = redis_server.RedisServer(tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def rsrv(tmp_path_factory):
    srv = lib.Server(tmp_path_factory.mktemp("rotator-redis"), name="rotator-redis",
                     env=MODULE_ENV)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rsm(rsrv):
    return rsrv.client()


@pytest.fixture(scope="module")
def rot(rsrv):
    return Rotary(rsrv)


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


def rotate(sm, rot, name, timeout=60.0, outcomes=("Succeeded", "Failed")):
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=REDIS,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    return token, rot.wait_outcome(name, token, outcomes=outcomes, timeout=timeout)


def value(sm, name, stage="AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


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
    assert rec["FailedStep"] == "createSecret" and "engine must be 'redis'" in rec["Error"], rec


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
        sm, rot = own_server.client(), Rotary(own_server)
        srv.add_user("downup", "downup-Pw-1")
        name = unique_name("redis-downup")
        sm.create_secret(Name=name, SecretString=json.dumps(
            {"host": srv.host, "port": srv.port, "username": "downup",
             "password": "downup-Pw-1"}))
        srv.stop()
        token = sm.rotate_secret(SecretId=name, RotationLambdaARN=REDIS,
                                 RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        recs = rot.wait_history(name, lambda rs: any(r["Outcome"] == "Retrying" for r in rs),
                                timeout=30, what="a failed first attempt")
        first = [r for r in recs if r["Outcome"] == "Retrying"][-1]
        assert first["FailedStep"] == "setSecret", first
        assert f":{srv.port}" in first["Error"] and "cannot reach" in first["Error"], first

        srv.start()
        rec = rot.wait_outcome(name, token, outcomes=("Succeeded", "Failed"), timeout=60)
        assert rec["Outcome"] == "Succeeded" and rec["Attempt"] >= 2, rec
        new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"]
        assert srv.can_auth("downup", new) and not srv.can_auth("downup", "downup-Pw-1")
    finally:
        srv.cleanup()


# ------------------------------------------------------------------------------------------
# 50 rotations while a client keeps AUTHing with AWSCURRENT
# ------------------------------------------------------------------------------------------
def _wait_rotated(sm, name, token, timeout=30.0, rot=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = sm.describe_secret(SecretId=name).get("VersionIdsToStages", {})
        if "AWSCURRENT" in st.get(token, []) and not any("AWSPENDING" in v for v in st.values()):
            return
        time.sleep(0.02)
    detail = json.dumps(rot.history(name, max_results=3), indent=1)[:4000] if rot else ""
    raise AssertionError(f"rotation {token} of {name} did not finish in {timeout}s\n{detail}")


def _rotate_now(sm, name, fn):
    """RotateSecret, retried while the previous rotation is still being recorded."""
    for _ in range(200):
        try:
            return sm.rotate_secret(SecretId=name, RotationLambdaARN=fn,
                                    RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        except lib.ClientError as e:
            if e.response["Error"]["Code"] != "InvalidRequestException":
                raise
            time.sleep(0.02)
    raise AssertionError("RotateSecret kept refusing")


def run_zero_downtime(srv, name, fn, login, rotations=50, retry=False, paced=False) -> dict:
    """Rotates `name` `rotations` times, back to back, while a client reads AWSCURRENT with
    boto3 and calls login(value) -> (ok, error) (a NEW connection each time). The client
    runs in a forked process so the test's own polling cannot starve it of the GIL.

    retry: after a failed login the client re-reads AWSCURRENT and tries again, up to 5
    times, 50-200 ms apart. paced: each next rotation waits until the client has finished
    one more read+login (with its retries) after the previous rotation ended, so every
    rotation is seen by the client and no rotation overtakes a login in flight.

    A failed login is "overtaken" when enough newer rotations started between its read and
    its failure to have legitimately retired the credentials it read: two if the newest
    rotation had finished at the read (alternating users change the non-current user, so a
    value read as AWSCURRENT stays valid until the rotation after next changes it), else
    one. Returns the figures."""
    ctx = multiprocessing.get_context("fork")
    stop, done, out = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    started, finished = ctx.Value("i", 0), ctx.Value("i", 0)

    def client_loop():
        client = lib.make_client(srv.url)
        st = {"attempts": 0, "failures": 0, "not_overtaken": 0, "recovered": 0,
              "unrecovered": 0, "errors": []}

        def attempt() -> bool:
            t0 = time.monotonic()
            got = client.get_secret_value(SecretId=name)
            t1 = time.monotonic()
            c0, f0 = started.value, finished.value
            ok, err = login(json.loads(got["SecretString"]))
            if ok:
                return True
            overtaken = started.value >= c0 + (2 if f0 >= c0 else 1)
            st["not_overtaken"] += not overtaken
            if len(st["errors"]) < 5:
                st["errors"].append({"error": err, "version": got["VersionId"],
                                     "overtaken": overtaken,
                                     "read_ms": round((t1 - t0) * 1000, 1),
                                     "read_to_failure_ms": round((time.monotonic() - t1) * 1000, 1)})
            return False

        try:
            while not stop.is_set():
                st["attempts"] += 1
                if not attempt():
                    st["failures"] += 1
                    if retry:
                        ok = False
                        for delay in (0.05, 0.1, 0.15, 0.2, 0.2):
                            time.sleep(delay)
                            if attempt():
                                ok = True
                                break
                        st["recovered" if ok else "unrecovered"] += 1
                with done.get_lock():
                    done.value += 1
        except Exception as e:  # noqa: BLE001 - reported by the test, not lost in a process
            st["errors"].append(f"client crashed: {e!r}")
            st["unrecovered"] += 1
        out.put(st)

    proc = ctx.Process(target=client_loop, daemon=True)
    proc.start()
    try:
        wait_for(lambda: done.value > 0 or not proc.is_alive(), 20, "the client's first login")
        sm = srv.client()
        t0 = time.monotonic()
        for _ in range(rotations):
            with started.get_lock():
                started.value += 1
            token = _rotate_now(sm, name, fn)
            _wait_rotated(sm, name, token, rot=Rotary(srv))
            with finished.get_lock():
                finished.value += 1
            if paced:
                seen = done.value
                wait_for(lambda: done.value > seen or not proc.is_alive(), 30,
                         "the client's next login", interval=0.005)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        st = out.get(timeout=60)
        proc.join(timeout=30)
    figures = {
        "function": fn.rsplit(":", 1)[-1],
        "rotations": rotations,
        "paced": paced,
        "seconds": round(elapsed, 2),
        "rotations_per_second": round(rotations / elapsed, 2),
        "login_attempts": st["attempts"],
        "failed_logins": st["failures"],
        "recovered_by_retry": st["recovered"],
        "unrecovered": st["unrecovered"],
        "sample_errors": st["errors"],
    }
    if not retry:
        figures["failed_not_overtaken"] = st["not_overtaken"]
    return figures


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


def record_perf(key: str, figures: dict) -> None:
    try:
        data = json.loads(PERF_FILE.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = figures
    PERF_FILE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nperf[{key}]: {json.dumps(figures)}")


def test_single_user_50_rotations_failures_recovered_by_retry(rsrv, rds, rsm, rot):
    """Single user: between setSecret and finishSecret Redis already has the new password and
    AWSCURRENT the old one. A client that re-reads AWSCURRENT and retries recovers from every
    failed AUTH when rotations do not outpace it (paced). Unpaced back-to-back rotations can
    outpace a 5-retry client; those figures are recorded, not asserted."""
    user, pw = redis_user(rds, "zs")
    name = unique_name("redis-loop")
    rsm.create_secret(Name=name, SecretString=json.dumps(redis_secret(rds, user, pw, ssl=False)))
    figures = run_zero_downtime(rsrv, name, REDIS, redis_login, retry=True, paced=True)
    record_perf("single_user", {**figures, "server": f"Redis {rds.version}"})
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
    record_perf("single_user_unpaced", {**unpaced, "server": f"Redis {rds.version}"})
    assert all(r["Outcome"] == "Succeeded" for r in rot.history(name, max_results=100))
    assert rds.can_auth(user, value(rsm, name)["password"])
