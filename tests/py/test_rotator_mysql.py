"""Built-in MySQL/MariaDB rotators against a real MariaDB started by the tests.

`rotary-mysql-single-user` (the user changes its own password) and
`rotary-mysql-alternating-users` (a master user maintains `user` / `user_clone`), spec
§5.9–§5.12. Pass = the new credentials log in on a NEW connection and the replaced ones no
longer do (single user) or still do (alternating). Also: missing keys, a wrong master
password, the database down during a rotation, hostile user names, and 50 back-to-back
rotations under a client that keeps logging in with AWSCURRENT (figures written to
tests/py/.perf-mysql.json).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

import pymysql
import pytest

import mysql_server
import rotary_testlib as lib
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import Rotary, lambda_arn, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not mysql_server.available(),
                                reason="mariadbd / mariadb-install-db not installed")

SINGLE = lambda_arn("rotary-mysql-single-user")
ALTERNATING = lambda_arn("rotary-mysql-alternating-users")
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
PERF_FILE = Path(__file__).resolve().parent / ".perf-mysql.json"
MODULE_ENV = {"ROTARY_ROTATION_MAX_ATTEMPTS": "2", "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mdb(tmp_path_factory):
    db = mysql_server.MariaDB(tmp_path_factory.mktemp("mariadb"))
    db.start()
    db.sql("CREATE DATABASE appdb")
    db.sql("CREATE TABLE appdb.items (id INT PRIMARY KEY, name VARCHAR(20))")
    db.sql("INSERT INTO appdb.items VALUES (1, 'one'), (2, 'two')")
    db.sql("CREATE TABLE appdb.hidden (id INT)")
    db.sql("CREATE TABLE appdb.via_role (id INT)")
    db.sql("CREATE ROLE rotary_reader")
    db.sql("GRANT SELECT ON appdb.via_role TO rotary_reader")
    db.create_user("rotary_master", "master-Pw-0001",
                   grants=["GRANT ALL PRIVILEGES ON *.* TO {u} WITH GRANT OPTION",
                           # Granting a role needs the role WITH ADMIN OPTION.
                           "GRANT rotary_reader TO {u} WITH ADMIN OPTION"])
    yield db
    db.cleanup()


@pytest.fixture(scope="module")
def msrv(tmp_path_factory):
    srv = lib.Server(tmp_path_factory.mktemp("rotator-mysql"), name="rotator-mysql",
                     env=MODULE_ENV)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def msm(msrv):
    return msrv.client()


@pytest.fixture(scope="module")
def rot(msrv):
    return Rotary(msrv)


@pytest.fixture(scope="module")
def master_arn(msm, mdb):
    name = unique_name("mysql-master")
    return msm.create_secret(Name=name, SecretString=json.dumps({
        "engine": "mariadb", "host": mdb.host, "port": mdb.port,
        "username": "rotary_master", "password": "master-Pw-0001"}))["ARN"]


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def app_user(mdb, prefix="app", password=None, grants=("GRANT SELECT ON appdb.items TO {u}",)):
    """A fresh user@'%' that may read appdb.items (and not appdb.hidden)."""
    user = f"{prefix}{unique_name('')[1:9]}"
    password = password or f"init-{unique_name('pw')[3:19]}"
    mdb.create_user(user, password, grants=list(grants))
    return user, password


def db_secret(mdb, user, password, engine="mariadb", **extra) -> dict:
    return {"engine": engine, "host": mdb.host, "port": mdb.port, "username": user,
            "password": password, "dbname": "appdb", **extra}


def rotate(sm, rot, name, fn, timeout=60.0, outcomes=("Succeeded", "Failed")):
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=fn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    rec = rot.wait_outcome(name, token, outcomes=outcomes, timeout=timeout)
    return token, rec


def value(sm, name, stage="AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def can_select_items(mdb, user, password) -> bool:
    try:
        conn = mdb.connect(user, password, database="appdb")
    except pymysql.err.OperationalError:
        return False
    try:
        with conn.cursor() as c:
            c.execute("SELECT name FROM appdb.items ORDER BY id")
            return [r[0] for r in c.fetchall()] == ["one", "two"]
    finally:
        conn.close()


def can_select_hidden(mdb, user, password) -> bool:
    conn = mdb.connect(user, password)
    try:
        with conn.cursor() as c:
            c.execute("SELECT COUNT(*) FROM appdb.hidden")
            return True
    except pymysql.err.MySQLError:
        return False
    finally:
        conn.close()


def assert_succeeded(rec, sm, name):
    assert rec["Outcome"] == "Succeeded", json.dumps(rec, indent=1)
    assert [s["Step"] for s in rec["Steps"]] == STEPS, rec
    history = json.dumps(rec)
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        pw = value(sm, name, stage)["password"]
        assert pw not in history, f"the {stage} password leaked into the history"


# ------------------------------------------------------------------------------------------
# Single user
# ------------------------------------------------------------------------------------------
def test_single_user_rotation_changes_the_password(mdb, msrv, msm, rot):
    user, old = app_user(mdb)
    name = unique_name("mysql-single")
    # Port as a string (templates call int()), no `ssl` (TLS tried, then plaintext), and an
    # extra member that must survive.
    secret = db_secret(mdb, user, old, port=str(mdb.port), team="payments")
    orig = msm.create_secret(Name=name, SecretString=json.dumps(secret))["VersionId"]

    token, rec = rotate(msm, rot, name, SINGLE)
    assert_succeeded(rec, msm, name)
    new = value(msm, name)
    assert msm.get_secret_value(SecretId=name)["VersionId"] == token
    assert new["username"] == user and new["team"] == "payments" and new["port"] == str(mdb.port)
    assert len(new["password"]) == 32 and not set(new["password"]) & set(":/@\"'\\")
    assert mdb.can_login(user, new["password"]), "the new password must log in"
    assert new["password"] not in msrv.log_path.read_text(errors="replace"), "leaked to the log"
    assert not mdb.can_login(user, old), "the old password must stop working"
    assert can_select_items(mdb, user, new["password"])
    prev = msm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == orig and json.loads(prev["SecretString"])["password"] == old
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert "MariaDB" in outputs["setSecret"] and "AWSCURRENT" in outputs["setSecret"], outputs

    # A second rotation starts from the rotated password.
    token2, rec2 = rotate(msm, rot, name, SINGLE)
    assert_succeeded(rec2, msm, name)
    newer = value(msm, name)["password"]
    assert newer != new["password"]
    assert mdb.can_login(user, newer) and not mdb.can_login(user, new["password"])


def test_single_user_falls_back_to_awsprevious(mdb, msm, rot):
    """AWSCURRENT no longer logs in but AWSPREVIOUS does (the database was restored to the
    old password): setSecret logs in with AWSPREVIOUS, as AWS's template does."""
    user, old = app_user(mdb)
    name = unique_name("mysql-single-previous")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, old, ssl=False)))
    _, rec = rotate(msm, rot, name, SINGLE)
    assert_succeeded(rec, msm, name)
    mdb.sql("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, old))
    _, rec = rotate(msm, rot, name, SINGLE)
    assert_succeeded(rec, msm, name)
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert "logged in with AWSPREVIOUS" in outputs["setSecret"], outputs
    new = value(msm, name)["password"]
    assert mdb.can_login(user, new) and not mdb.can_login(user, old)


def test_ssl_true_against_a_server_without_tls_fails_cleanly(mdb, msm, rot):
    user, old = app_user(mdb)
    name = unique_name("mysql-ssl")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, old, ssl=True)))
    token, rec = rotate(msm, rot, name, SINGLE, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "setSecret", rec
    assert "TLS" in rec["Error"] or "SSL" in rec["Error"] or "ssl" in rec["Error"], rec
    assert old not in json.dumps(rot.history(name))
    assert value(msm, name)["password"] == old
    assert mdb.can_login(user, old)


@pytest.mark.parametrize("missing", ["host", "username", "engine"])
def test_missing_key_fails_naming_it_and_awscurrent_still_works(missing, mdb, msm, rot):
    user, old = app_user(mdb)
    name = unique_name(f"mysql-missing-{missing}")
    secret = db_secret(mdb, user, old)
    del secret[missing]
    orig = msm.create_secret(Name=name, SecretString=json.dumps(secret))["VersionId"]
    token, rec = rotate(msm, rot, name, SINGLE, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "createSecret", rec
    assert f"{missing} key is missing from secret JSON" in rec["Error"], rec
    got = msm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig and json.loads(got["SecretString"]) == secret
    assert mdb.can_login(user, old), "AWSCURRENT's credentials must still work"


def test_wrong_engine_is_refused(mdb, msm, rot):
    user, old = app_user(mdb)
    name = unique_name("mysql-engine")
    msm.create_secret(Name=name,
                      SecretString=json.dumps(db_secret(mdb, user, old, engine="postgres")))
    token, rec = rotate(msm, rot, name, SINGLE, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "createSecret" and "'mysql'" in rec["Error"], rec
    assert mdb.can_login(user, old)


# ------------------------------------------------------------------------------------------
# Alternating users
# ------------------------------------------------------------------------------------------
def test_alternating_users_clone_with_the_same_grants(mdb, msm, rot, master_arn):
    user, old = app_user(mdb, grants=(
        "GRANT SELECT ON appdb.items TO {u}",
        "GRANT INSERT ON appdb.items TO {u} WITH GRANT OPTION",
        "GRANT rotary_reader TO {u}",
        "SET DEFAULT ROLE rotary_reader FOR {u}",
    ))
    clone = f"{user}_clone"
    name = unique_name("mysql-alt")
    orig = msm.create_secret(Name=name, SecretString=json.dumps(
        db_secret(mdb, user, old, masterarn=master_arn)))["VersionId"]
    assert not mdb.user_exists(clone)

    t1, rec = rotate(msm, rot, name, ALTERNATING)
    assert_succeeded(rec, msm, name)
    cur = value(msm, name)
    assert cur["username"] == clone and cur["masterarn"] == master_arn
    assert mdb.user_exists(clone, "%"), "the clone must have the current user's host part"
    assert can_select_items(mdb, clone, cur["password"]), "the clone must read what app reads"
    assert not can_select_hidden(mdb, clone, cur["password"]), "and no more"
    grants = [g[0] for g in mdb.sql("SHOW GRANTS FOR %s@'%%'", (clone,))]
    assert any("INSERT" in g and "WITH GRANT OPTION" in g for g in grants), grants
    assert not mdb.can_login(clone, old), "the original's password must not be copied"
    # The role and the default role came along: the clone reads via_role without SET ROLE.
    conn = mdb.connect(clone, cur["password"])
    with conn.cursor() as c:
        c.execute("SELECT COUNT(*) FROM appdb.via_role")
    conn.close()
    # The original user and password are untouched: AWSPREVIOUS still logs in.
    prev = value(msm, name, "AWSPREVIOUS")
    assert (prev["username"], prev["password"]) == (user, old)
    assert mdb.can_login(user, old)
    assert msm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"] == orig

    # Second rotation: back to `user` with a new password; the clone keeps working.
    t2, rec = rotate(msm, rot, name, ALTERNATING)
    assert_succeeded(rec, msm, name)
    cur2 = value(msm, name)
    assert cur2["username"] == user and cur2["password"] != old
    assert mdb.can_login(user, cur2["password"]) and not mdb.can_login(user, old)
    assert mdb.can_login(clone, cur["password"]), "AWSPREVIOUS (the clone) still logs in"
    assert value(msm, name, "AWSPREVIOUS") == cur

    # Third: the clone again, with a new password (the user already exists now).
    t3, rec = rotate(msm, rot, name, ALTERNATING)
    assert_succeeded(rec, msm, name)
    cur3 = value(msm, name)
    assert cur3["username"] == clone and cur3["password"] != cur["password"]
    assert mdb.can_login(clone, cur3["password"]) and not mdb.can_login(clone, cur["password"])
    assert mdb.can_login(user, cur2["password"])
    assert can_select_items(mdb, clone, cur3["password"])


def test_alternating_wrong_master_password_fails_and_changes_nothing(mdb, msm, rot):
    user, old = app_user(mdb)
    bad_master = msm.create_secret(Name=unique_name("mysql-badmaster"), SecretString=json.dumps({
        "engine": "mariadb", "host": mdb.host, "port": mdb.port,
        "username": "rotary_master", "password": "not-the-master-password"}))["ARN"]
    name = unique_name("mysql-alt-badmaster")
    orig = msm.create_secret(Name=name, SecretString=json.dumps(
        db_secret(mdb, user, old, masterarn=bad_master)))["VersionId"]
    token, rec = rotate(msm, rot, name, ALTERNATING, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "setSecret", rec
    assert "master secret" in rec["Error"] and "Access denied" in rec["Error"], rec
    assert "not-the-master-password" not in json.dumps(rot.history(name))
    assert msm.get_secret_value(SecretId=name)["VersionId"] == orig
    assert mdb.can_login(user, old)
    assert not mdb.user_exists(f"{user}_clone")


def test_alternating_without_masterarn_fails_naming_it(mdb, msm, rot):
    user, old = app_user(mdb)
    name = unique_name("mysql-alt-nomaster")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, old)))
    token, rec = rotate(msm, rot, name, ALTERNATING, outcomes=("Retrying", "Failed"))
    assert rec["FailedStep"] == "createSecret", rec
    assert "masterarn key is missing from secret JSON" in rec["Error"], rec
    assert mdb.can_login(user, old)


# ------------------------------------------------------------------------------------------
# Hostile user names
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("base", ["o'neil", "back`tick", 'q"bs\\x;--'])
def test_hostile_usernames_single_then_alternating(base, mdb, msm, rot, master_arn):
    user = f"{base}{unique_name('')[1:5]}"
    old = f"init-{unique_name('pw')[3:19]}"
    mdb.create_user(user, old, grants=["GRANT SELECT ON appdb.items TO {u}"])
    users_before = {tuple(r) for r in mdb.sql("SELECT User, Host FROM mysql.user")}

    name = unique_name("mysql-hostile")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, old)))
    _, rec = rotate(msm, rot, name, SINGLE)
    assert_succeeded(rec, msm, name)
    pw = value(msm, name)["password"]
    assert mdb.can_login(user, pw) and not mdb.can_login(user, old)

    alt = unique_name("mysql-hostile-alt")
    msm.create_secret(Name=alt, SecretString=json.dumps(
        db_secret(mdb, user, pw, masterarn=master_arn)))
    _, rec = rotate(msm, rot, alt, ALTERNATING)
    assert_succeeded(rec, msm, alt)
    cur = value(msm, alt)
    assert cur["username"] == f"{user}_clone"
    assert can_select_items(mdb, cur["username"], cur["password"])
    assert mdb.can_login(user, pw), "the original user keeps its password"
    users_after = {tuple(r) for r in mdb.sql("SELECT User, Host FROM mysql.user")}
    assert users_after - users_before == {(f"{user}_clone", "%")}, users_after - users_before


# ------------------------------------------------------------------------------------------
# Database down during a rotation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("own_server", [{"ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}],
                         indirect=True)
def test_database_down_then_up_retry_completes(own_server, tmp_path):
    db = mysql_server.MariaDB(tmp_path / "mariadb-downup")
    db.start()
    try:
        sm, rot = own_server.client(), Rotary(own_server)
        db.create_user("downup", "downup-Pw-1")
        name = unique_name("mysql-downup")
        sm.create_secret(Name=name, SecretString=json.dumps(
            {"engine": "mysql", "host": db.host, "port": db.port, "username": "downup",
             "password": "downup-Pw-1"}))
        db.stop()
        token = sm.rotate_secret(SecretId=name, RotationLambdaARN=SINGLE,
                                 RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        recs = rot.wait_history(name, lambda rs: any(r["Outcome"] == "Retrying" for r in rs),
                                timeout=30, what="a failed first attempt")
        first = [r for r in recs if r["Outcome"] == "Retrying"][-1]
        assert first["FailedStep"] == "setSecret", first
        assert f":{db.port}" in first["Error"] and "cannot reach" in first["Error"], first
        assert sm.get_secret_value(SecretId=name)["SecretString"].count("downup-Pw-1") == 1

        db.start()
        rec = rot.wait_outcome(name, token, outcomes=("Succeeded", "Failed"), timeout=60)
        assert rec["Outcome"] == "Succeeded" and rec["Attempt"] >= 2, rec
        new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"]
        assert db.can_login("downup", new) and not db.can_login("downup", "downup-Pw-1")
    finally:
        db.cleanup()


# ------------------------------------------------------------------------------------------
# Zero downtime: 50 rotations while a client keeps logging in with AWSCURRENT
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


def mysql_login(v) -> tuple[bool, str | None]:
    """A new connection with the secret's credentials, then SELECT 1."""
    try:
        conn = pymysql.connect(host=v["host"], port=int(v["port"]), user=v["username"],
                               password=v["password"], connect_timeout=5)
    except pymysql.err.OperationalError as e:
        return False, str(e)
    try:
        with conn.cursor() as c:
            c.execute("SELECT 1")
            return c.fetchone()[0] == 1, None
    finally:
        conn.close()


def record_perf(key: str, figures: dict) -> None:
    try:
        data = json.loads(PERF_FILE.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = figures
    PERF_FILE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nperf[{key}]: {json.dumps(figures)}")


def test_zero_downtime_alternating_50_rotations(msrv, mdb, msm, rot, master_arn):
    """Alternating users: no login with AWSCURRENT fails. Paced (every rotation seen by the
    client): zero failed logins. Unpaced (a rotation every ~200 ms, so a login slower than
    the gap between two rotations may use credentials two rotations old): zero failures
    that were not overtaken by the rotation after next; the raw count is recorded."""
    user, pw = app_user(mdb, prefix="zd")
    name = unique_name("mysql-zero-downtime")
    msm.create_secret(Name=name, SecretString=json.dumps(
        db_secret(mdb, user, pw, masterarn=master_arn, ssl=False)))
    figures = run_zero_downtime(msrv, name, ALTERNATING, mysql_login, paced=True)
    record_perf("alternating", {**figures, "server": mdb.version})
    assert figures["login_attempts"] >= 50, figures
    assert figures["failed_logins"] == 0, figures

    recs = rot.history(name, max_results=100)
    assert len(recs) == 50 and all(r["Outcome"] == "Succeeded" for r in recs), \
        [r["Outcome"] for r in recs]
    cur = value(msm, name)
    assert cur["username"] == user  # 50 rotations: an even number of flips
    assert mdb.can_login(user, cur["password"])

    # A secret keeps at most 100 versions: the unpaced run uses another user and secret.
    user, pw = app_user(mdb, prefix="zu")
    name = unique_name("mysql-zero-downtime-unpaced")
    msm.create_secret(Name=name, SecretString=json.dumps(
        db_secret(mdb, user, pw, masterarn=master_arn, ssl=False)))
    unpaced = run_zero_downtime(msrv, name, ALTERNATING, mysql_login)
    record_perf("alternating_unpaced", {**unpaced, "server": mdb.version})
    assert unpaced["login_attempts"] >= 50, unpaced
    assert unpaced["failed_not_overtaken"] == 0, unpaced
    assert all(r["Outcome"] == "Succeeded" for r in rot.history(name, max_results=100))


def test_single_user_50_rotations_failures_recovered_by_retry(msrv, mdb, msm, rot):
    """Single user has a window (setSecret → finishSecret) where the database already has the
    new password and AWSCURRENT still the old one. A client that re-reads AWSCURRENT and
    retries recovers from every failed login, as long as rotations do not outpace it.
    Unpaced back-to-back rotations (one every ~70 ms) can outpace a 5-retry client; that
    run's figures are recorded, not asserted."""
    user, pw = app_user(mdb, prefix="zs")
    name = unique_name("mysql-single-loop")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, pw, ssl=False)))
    figures = run_zero_downtime(msrv, name, SINGLE, mysql_login, retry=True, paced=True)
    record_perf("single_user", {**figures, "server": mdb.version})
    assert figures["login_attempts"] >= 50, figures
    assert figures["unrecovered"] == 0, figures
    assert figures["recovered_by_retry"] == figures["failed_logins"], figures

    recs = rot.history(name, max_results=100)
    assert len(recs) == 50 and all(r["Outcome"] == "Succeeded" for r in recs)
    assert mdb.can_login(user, value(msm, name)["password"])

    user, pw = app_user(mdb, prefix="zu")
    name = unique_name("mysql-single-loop-unpaced")
    msm.create_secret(Name=name, SecretString=json.dumps(db_secret(mdb, user, pw, ssl=False)))
    unpaced = run_zero_downtime(msrv, name, SINGLE, mysql_login, retry=True, paced=False)
    record_perf("single_user_unpaced", {**unpaced, "server": mdb.version})
    assert all(r["Outcome"] == "Succeeded" for r in rot.history(name, max_results=100))
    assert mdb.can_login(user, value(msm, name)["password"])
