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
import sys
from pathlib import Path

import pymysql
import pytest

import mysql_server
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import lambda_arn  # noqa: E402
from rotator_harness import check_down_then_up, rotary_fixtures, rotate, value  # noqa: E402
from zero_downtime import record_perf, run_zero_downtime  # noqa: E402

pytestmark = pytest.mark.skipif(not mysql_server.available(),
                                reason="mariadbd / mariadb-install-db not installed")

SINGLE = lambda_arn("rotary-mysql-single-user")
ALTERNATING = lambda_arn("rotary-mysql-alternating-users")
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
PERF_FILE = Path(__file__).resolve().parent / ".perf-mysql.json"


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


msrv, msm, rot = rotary_fixtures("m", "rotator-mysql")


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
    assert mdb.reads_items(user, new["password"])
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
    # A configuration error: the first attempt fails for good (issue 10).
    assert rec["Outcome"] == "Failed" and rec["Attempt"] == 1, rec
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
    assert mdb.reads_items(clone, cur["password"]), "the clone must read what app reads"
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
    assert mdb.reads_items(clone, cur3["password"])


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
    assert mdb.reads_items(cur["username"], cur["password"])
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
        db.create_user("downup", "downup-Pw-1")
        secret = {"engine": "mysql", "host": db.host, "port": db.port, "username": "downup",
                  "password": "downup-Pw-1"}
        check_down_then_up(own_server, db, SINGLE, secret, db.can_login)
    finally:
        db.cleanup()


# ------------------------------------------------------------------------------------------
# Zero downtime: 50 rotations while a client keeps logging in with AWSCURRENT
# ------------------------------------------------------------------------------------------
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
    record_perf(PERF_FILE, "alternating", {**figures, "server": mdb.version})
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
    record_perf(PERF_FILE, "alternating_unpaced", {**unpaced, "server": mdb.version})
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
    record_perf(PERF_FILE, "single_user", {**figures, "server": mdb.version})
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
    record_perf(PERF_FILE, "single_user_unpaced", {**unpaced, "server": mdb.version})
    assert all(r["Outcome"] == "Succeeded" for r in rot.history(name, max_results=100))
    assert mdb.can_login(user, value(msm, name)["password"])
