"""The built-in PostgreSQL rotators (`rotary-postgresql-single-user`,
`rotary-postgresql-alternating-users`; spec §5.9–§5.12) against a real PostgreSQL.

One throwaway PostgreSQL (pg_server.py; scram-sha-256, TLS with a test CA when `openssl`
exists) serves the whole session; one Rotary server with fast retries (5 attempts, 1 s base)
and the test CA in SSL_CERT_FILE serves the module. Tests isolate by role and secret name.
A rotation passes when the new credentials log in (psycopg) and the ones it replaced do not;
alternating users must keep AWSPREVIOUS working. The zero-downtime tests write their figures
to tests/py/.perf-postgres.json (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

import rotary_testlib as lib
from rotary_testlib import stages, unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

import pg_server  # noqa: E402
from rotlib import STEPS, Rotary, lambda_arn  # noqa: E402
from zero_downtime import record_perf, run_zero_downtime  # noqa: E402

SINGLE = lambda_arn("rotary-postgresql-single-user")
ALTERNATING = lambda_arn("rotary-postgresql-alternating-users")
EXCLUDED = set(":/@\"'\\")
PERF_FILE = Path(__file__).resolve().parent / ".perf-postgres.json"
ZERO_DOWNTIME_ROTATIONS = 50


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg():
    if not pg_server.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing (.ci/run installs them)")
        pytest.skip("PostgreSQL server binaries not installed")
    srv = pg_server.PgServer(name="pg", tls=True)
    try:
        srv.start()
        srv.sql(f"CREATE ROLE {pg_server.TLS_ONLY_ROLE} NOLOGIN")
        yield srv
    finally:
        srv.destroy()


@pytest.fixture(scope="module")
def psrv(tmp_path_factory, pg):
    env = {"ROTARY_ROTATION_MAX_ATTEMPTS": "5", "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1",
           "SSL_CERT_FILE": str(pg.ca_cert) if pg.tls else ""}
    srv = lib.Server(tmp_path_factory.mktemp("rotator-pg"), name="rotator-pg", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def psm(psrv):
    return psrv.client()


@pytest.fixture(scope="module")
def rot(psrv):
    return Rotary(psrv)


@pytest.fixture(scope="module")
def master(psm, pg):
    """A master secret holding the superuser's credentials (alternating users)."""
    name = unique_name("pg-master")
    arn = psm.create_secret(Name=name, SecretString=json.dumps({
        "engine": "postgres", "host": pg.host, "port": pg.port,
        "username": pg_server.SUPERUSER, "password": pg.superuser_password}))["ARN"]
    return arn


@pytest.fixture(autouse=True)
def _rotator_server_still_alive(request):
    yield
    if "psrv" in request.fixturenames:
        srv = request.getfixturevalue("psrv")
        if not srv.alive():
            pytest.fail(f"rotary died during {request.node.name}; log:\n{srv.log_tail()}")


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def role_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def orig_password() -> str:
    return f"Orig-{uuid.uuid4().hex}"


def db_secret(pg, username: str, password: str, **extra) -> dict:
    return {"engine": "postgres", "host": pg.host, "port": pg.port, "dbname": "postgres",
            "username": username, "password": password, **extra}


def make_secret(sm, value: dict, prefix: str = "pg") -> tuple[str, str]:
    """Creates a secret; returns (name, version id)."""
    name = unique_name(prefix)
    vid = sm.create_secret(Name=name, SecretString=json.dumps(value))["VersionId"]
    return name, vid


def value_of(sm, name: str, stage: str = "AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def rotate(sm, rot, name: str, fn: str | None = None, timeout: float = 60.0) -> tuple[str, dict]:
    """Starts a rotation and waits for its final outcome; returns (token, record)."""
    kw = {"RotationLambdaARN": fn} if fn else {}
    token = sm.rotate_secret(SecretId=name, **kw)["VersionId"]
    return token, rot.wait_outcome(name, token, timeout=timeout)


def rotate_ok(sm, rot, name: str, fn: str | None = None) -> dict:
    token, rec = rotate(sm, rot, name, fn)
    assert rec["Outcome"] == "Succeeded", json.dumps(rec, indent=1)
    assert [s["Step"] for s in rec["Steps"]] == STEPS, rec
    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == token
    return json.loads(cur["SecretString"])


def wait_failure(sm, rot, name: str, fn: str, timeout: float = 30.0) -> tuple[str, dict]:
    """Starts a rotation, waits for its first failed attempt, then cancels further retries."""
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=fn)["VersionId"]
    rec = rot.wait_outcome(name, token, outcomes=("Retrying", "Failed"), timeout=timeout)
    sm.cancel_rotate_secret(SecretId=name)
    return token, rec


def assert_new_password(value: dict, old: str) -> None:
    pw = value["password"]
    assert pw != old and len(pw) == 32, "the password was not replaced by a 32-character one"
    assert not (set(pw) & EXCLUDED), "the new password holds an excluded character"


def assert_unchanged(sm, name: str, orig_vid: str, value: dict, pg) -> None:
    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == orig_vid
    assert json.loads(cur["SecretString"]) == value
    assert pg.can_login(value["username"], value["password"]), pg.login_error(
        value["username"], value["password"])


def history_text(rot, name: str) -> str:
    return json.dumps(rot.history(name))


# ------------------------------------------------------------------------------------------
# Single user
# ------------------------------------------------------------------------------------------
def test_single_user_rotation_sets_a_new_password_and_the_old_one_stops_working(psm, rot, pg):
    user, orig = role_name("single"), orig_password()
    pg.create_role(user, orig)
    value = db_secret(pg, user, orig, port=str(pg.port), note="kept as is")
    name, orig_vid = make_secret(psm, value)

    new = rotate_ok(psm, rot, name, SINGLE)
    assert_new_password(new, orig)
    assert {k: v for k, v in new.items() if k != "password"} == {
        k: v for k, v in value.items() if k != "password"}, "other members must be kept"
    assert pg.can_login(user, new["password"]), pg.login_error(user, new["password"])
    assert not pg.can_login(user, orig), "the replaced password still logs in"
    assert value_of(psm, name, "AWSPREVIOUS") == value
    rec = rot.history(name)[0]
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert "changed the password" in outputs["setSecret"], outputs
    assert "logged into" in outputs["testSecret"], outputs

    # A second rotation logs in with the first one's password.
    newer = rotate_ok(psm, rot, name)
    assert_new_password(newer, new["password"])
    assert pg.can_login(user, newer["password"])
    assert not pg.can_login(user, new["password"])
    assert value_of(psm, name, "AWSPREVIOUS") == new
    assert orig_vid not in stages(psm, name)


def test_single_user_logs_in_with_the_previous_password_when_current_no_longer_works(psm, rot,
                                                                                     pg):
    """AWS's fallback: someone put a wrong AWSCURRENT; the AWSPREVIOUS password still logs
    in, so setSecret uses it."""
    user, orig = role_name("prevfb"), orig_password()
    pg.create_role(user, orig)
    good = db_secret(pg, user, orig)
    name, _ = make_secret(psm, good)
    psm.put_secret_value(SecretId=name, SecretString=json.dumps({**good, "password": "wrong-1"}))
    assert value_of(psm, name, "AWSPREVIOUS") == good
    new = rotate_ok(psm, rot, name, SINGLE)
    assert pg.can_login(user, new["password"])
    setsecret = rot.history(name)[0]["Steps"][1]
    assert "logged in with the AWSPREVIOUS password" in setsecret["Output"], setsecret


# ------------------------------------------------------------------------------------------
# Alternating users
# ------------------------------------------------------------------------------------------
def test_alternating_first_rotation_clones_the_user_with_its_grants(psm, rot, pg, master):
    user, orig = role_name("alt"), orig_password()
    pg.create_role(user, orig)
    table, other = role_name("granted"), role_name("private")
    pg.sql(f"CREATE TABLE {table} (v int); INSERT INTO {table} VALUES (42); "
           f"GRANT SELECT ON {table} TO {user}; CREATE TABLE {other} (v int)")
    value = db_secret(pg, user, orig, masterarn=master)
    name, orig_vid = make_secret(psm, value)

    new = rotate_ok(psm, rot, name, ALTERNATING)
    clone = f"{user}_clone"
    assert new["username"] == clone and new["masterarn"] == master
    assert_new_password(new, orig)
    rows = pg.sql("SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
                  (clone,))
    assert rows == [(True, False, False)], rows
    with pg.connect(clone, new["password"]) as c:
        assert c.execute(f"SELECT v FROM {table}").fetchall() == [(42,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(f"SELECT v FROM {other}")
    # The original user is AWSPREVIOUS and still logs in: nothing touched it.
    assert value_of(psm, name, "AWSPREVIOUS") == value
    assert pg.can_login(user, orig)
    out = rot.history(name)[0]["Steps"][1]["Output"]
    assert "created user" in out and "with the privileges of" in out, out


def test_alternating_users_alternate_and_previous_credentials_keep_working(psm, rot, pg, master):
    user, orig = role_name("alt3"), orig_password()
    pg.create_role(user, orig)
    name, _ = make_secret(psm, db_secret(pg, user, orig, masterarn=master))
    seen = [(user, orig)]
    for i in range(4):
        new = rotate_ok(psm, rot, name, ALTERNATING if i == 0 else None)
        seen.append((new["username"], new["password"]))
        prev = value_of(psm, name, "AWSPREVIOUS")
        assert (prev["username"], prev["password"]) == seen[-2]
        assert pg.can_login(*seen[-1]), f"AWSCURRENT of rotation {i + 1} does not log in"
        assert pg.can_login(*seen[-2]), f"AWSPREVIOUS after rotation {i + 1} does not log in"
        if len(seen) >= 3:
            assert not pg.can_login(*seen[-3]), "the credentials from two rotations ago work"
    assert [u for u, _ in seen] == [user, f"{user}_clone"] * 2 + [user]
    assert len(rot.history(name)) == 4


def test_alternating_with_the_master_named_not_arn_and_a_second_database(psm, rot, pg, master):
    """`masterarn` may be a name; the master logs into the rotated secret's database."""
    db = role_name("appdb")
    pg.sql(f"CREATE DATABASE {db}")
    user, orig = role_name("altdb"), orig_password()
    pg.create_role(user, orig)
    pg.sql(f"GRANT CONNECT ON DATABASE {db} TO {user}")
    master_name = psm.describe_secret(SecretId=master)["Name"]
    name, _ = make_secret(psm, db_secret(pg, user, orig, dbname=db, masterarn=master_name))
    new = rotate_ok(psm, rot, name, ALTERNATING)
    assert new["dbname"] == db and new["masterarn"] == master_name
    assert pg.can_login(new["username"], new["password"], dbname=db)


# ------------------------------------------------------------------------------------------
# Failures: recorded, nothing changed, AWSCURRENT still logs in
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change,error", [
    (lambda v: v.pop("host"), "createSecret: AWSCURRENT: host key is missing from secret JSON"),
    (lambda v: v.pop("password"), "password key is missing from secret JSON"),
    # No "dbname": "postgres" here: the history redacts every string member of 6+ characters.
    (lambda v: (v.update(engine="mysql"), v.pop("dbname")),
     "Database engine must be set to 'postgres' in order to use this rotation function"),
    (lambda v: v.update(port="not-a-port"), "AWSCURRENT: port must be a number between 1 and 65535"),
    (lambda v: v.update(ssl="maybe"), "AWSCURRENT: ssl must be true or false"),
    (lambda v: v.update(username=["x"]), "AWSCURRENT: username must be a string"),
], ids=["no-host", "no-password", "engine", "port", "ssl", "username-type"])
def test_invalid_secret_json_fails_at_create_and_changes_nothing(change, error, psm, rot, pg):
    user, orig = role_name("bad"), orig_password()
    pg.create_role(user, orig)
    value = db_secret(pg, user, orig)
    change(value)
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, SINGLE)
    # A configuration error: the first attempt fails for good (issue 10).
    assert rec["Outcome"] == "Failed" and rec["Attempt"] == 1, rec
    assert rec["FailedStep"] == "createSecret", rec
    assert error in rec["Error"], rec["Error"]
    cur = psm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == orig_vid and json.loads(cur["SecretString"]) == value
    assert pg.can_login(user, orig), "the role's password changed"


def test_alternating_without_masterarn_fails_at_create(psm, rot, pg):
    user, orig = role_name("nomaster"), orig_password()
    pg.create_role(user, orig)
    name, orig_vid = make_secret(psm, db_secret(pg, user, orig))
    _, rec = wait_failure(psm, rot, name, ALTERNATING)
    assert rec["FailedStep"] == "createSecret"
    assert "masterarn key is missing from secret JSON" in rec["Error"], rec
    assert not pg.role_exists(f"{user}_clone")


def test_alternating_with_a_wrong_master_password_fails_and_current_still_works(psm, rot, pg,
                                                                                psrv):
    user, orig = role_name("badmaster"), orig_password()
    pg.create_role(user, orig)
    wrong = f"Wrong-Master-{uuid.uuid4().hex}"
    master_arn = psm.create_secret(Name=unique_name("pg-badmaster"), SecretString=json.dumps({
        "engine": "postgres", "host": pg.host, "port": pg.port,
        "username": pg_server.SUPERUSER, "password": wrong}))["ARN"]
    value = db_secret(pg, user, orig, masterarn=master_arn)
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, ALTERNATING)
    assert rec["FailedStep"] == "setSecret", rec
    assert "with the master credentials" in rec["Error"], rec["Error"]
    assert "password authentication failed" in rec["Error"], rec["Error"]
    assert_unchanged(psm, name, orig_vid, value, pg)
    assert not pg.role_exists(f"{user}_clone")
    # Leak canary: neither the master's nor the user's password in history or server log.
    pending = json.loads(psm.get_secret_value(
        SecretId=name, VersionStage="AWSPENDING")["SecretString"])["password"]
    texts = history_text(rot, name) + psrv.log_path.read_text(errors="replace")
    for pw in (wrong, orig, pending, pg.superuser_password):
        assert pw not in texts, "a password leaked into the history or the server log"


def test_alternating_refuses_a_master_on_another_host(psm, rot, pg):
    user, orig = role_name("otherhost"), orig_password()
    pg.create_role(user, orig)
    master_arn = psm.create_secret(Name=unique_name("pg-farmaster"), SecretString=json.dumps({
        "host": "localhost", "port": pg.port, "username": pg_server.SUPERUSER,
        "password": pg.superuser_password}))["ARN"]
    value = db_secret(pg, user, orig, masterarn=master_arn)
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, ALTERNATING)
    assert rec["FailedStep"] == "setSecret" and "master secret's host" in rec["Error"], rec
    assert_unchanged(psm, name, orig_vid, value, pg)
    assert not pg.role_exists(f"{user}_clone")


def test_alternating_refuses_an_existing_role_that_is_not_the_users_clone(psm, rot, pg,
                                                                         master):
    """A secret for a self-made `<victim>_clone` must not get the master to reset the
    password of an existing role `<victim>`: the pair must be linked by `GRANT`."""
    victim, victim_pw = role_name("victim"), orig_password()
    pg.create_role(victim, victim_pw)
    pg.sql(f"ALTER ROLE {victim} CREATEROLE CREATEDB")
    fake, fake_pw = f"{victim}_clone", orig_password()
    pg.create_role(fake, fake_pw)
    value = db_secret(pg, fake, fake_pw, masterarn=master)
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, ALTERNATING)
    assert rec["FailedStep"] == "setSecret", rec
    assert "refusing to change the password of the existing role" in rec["Error"], rec
    assert pg.can_login(victim, victim_pw), "the victim's password was changed"
    assert_unchanged(psm, name, orig_vid, value, pg)

    # Linked the way the first rotation links them, the pair rotates.
    pg.sql(f"GRANT {victim} TO {fake}")
    psm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING",
                                    RemoveFromVersionId=rec["Token"])
    new = rotate_ok(psm, rot, name, ALTERNATING)
    assert new["username"] == victim and pg.can_login(victim, new["password"])


def test_single_user_with_a_wrong_current_password_fails_cleanly(psm, rot, pg):
    user, orig = role_name("wrongcur"), orig_password()
    pg.create_role(user, orig)
    value = db_secret(pg, user, "not-the-password")
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, SINGLE)
    assert rec["FailedStep"] == "setSecret", rec
    assert "unable to log into" in rec["Error"], rec
    assert "with the previous, current or pending credentials" in rec["Error"], rec
    assert pg.can_login(user, orig)


def test_database_down_fails_cleanly_then_the_retry_completes(psm, rot, psrv):
    """PostgreSQL stopped: setSecret fails (recorded, AWSCURRENT unchanged); once it is back,
    a retry of the same rotation completes and the new password logs in."""
    down = pg_server.PgServer(name="pg-down")
    try:
        down.start()
        user, orig = role_name("down"), orig_password()
        down.create_role(user, orig)
        value = db_secret(down, user, orig)
        name, orig_vid = make_secret(psm, value)
        down.stop()
        token = psm.rotate_secret(SecretId=name, RotationLambdaARN=SINGLE)["VersionId"]
        rec = rot.wait_outcome(name, token, outcomes=("Retrying", "Failed"), timeout=30)
        assert rec["Outcome"] == "Retrying" and rec["FailedStep"] == "setSecret", rec
        assert "setSecret: unable to reach" in rec["Error"], rec["Error"]
        assert "error connecting to server" in rec["Error"], rec["Error"]
        cur = psm.get_secret_value(SecretId=name)
        assert cur["VersionId"] == orig_vid and json.loads(cur["SecretString"]) == value

        down.start()
        done = rot.wait_outcome(name, token, outcomes=("Succeeded", "Failed"), timeout=60)
        assert done["Outcome"] == "Succeeded", done
        recs = rot.history(name)
        assert {r["Token"] for r in recs} == {token}
        assert recs[-1]["Outcome"] == "Retrying" and len(recs) >= 2, recs
        new = value_of(psm, name)
        assert_new_password(new, orig)
        assert down.can_login(user, new["password"])
        assert not down.can_login(user, orig)
    finally:
        down.destroy()


# ------------------------------------------------------------------------------------------
# SQL-hostile names
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [SINGLE, ALTERNATING], ids=["single", "alternating"])
@pytest.mark.parametrize("prefix", ['app"user', "o'neil", "Mixed Case;--"],
                         ids=["double-quote", "single-quote", "case-space-comment"])
def test_sql_hostile_usernames_rotate(prefix, fn, psm, rot, pg, master):
    user = role_name(prefix)
    orig = "it's a \"pass\\word\" $1"
    pg.create_role(user, orig)
    extra = {"masterarn": master} if fn == ALTERNATING else {}
    name, _ = make_secret(psm, db_secret(pg, user, orig, ssl="false", **extra))
    new = rotate_ok(psm, rot, name, fn)
    if fn == ALTERNATING:
        assert new["username"] == f"{user}_clone"
        assert pg.can_login(user, orig), "AWSPREVIOUS must keep working"
        again = rotate_ok(psm, rot, name)
        assert again["username"] == user and pg.can_login(user, again["password"])
        assert pg.can_login(new["username"], new["password"])
    else:
        assert new["username"] == user
        assert not pg.can_login(user, orig)
    assert pg.can_login(new["username"], new["password"])


# ------------------------------------------------------------------------------------------
# TLS
# ------------------------------------------------------------------------------------------
def _tls_only_role(pg, prefix: str) -> tuple[str, str]:
    user, orig = role_name(prefix), orig_password()
    pg.create_role(user, orig, member_of=(pg_server.TLS_ONLY_ROLE,))
    assert not pg.can_login(user, orig), "plaintext must be rejected for tls_only members"
    assert pg.can_login(user, orig, sslmode="require")
    return user, orig


@pytest.mark.parametrize("ssl", [True, "true", None], ids=["true", "string-true", "absent"])
def test_tls_verified_against_the_ca_rotates_a_tls_only_user(ssl, psm, rot, pg):
    if not pg.tls:
        pytest.skip("openssl is not available to make test certificates")
    user, orig = _tls_only_role(pg, "tls")
    extra = {} if ssl is None else {"ssl": ssl}
    name, _ = make_secret(psm, db_secret(pg, user, orig, **extra))
    new = rotate_ok(psm, rot, name, SINGLE)
    assert pg.can_login(user, new["password"], sslmode="require")
    assert not pg.can_login(user, orig, sslmode="require")


def test_tls_off_for_a_tls_only_user_fails_cleanly(psm, rot, pg):
    if not pg.tls:
        pytest.skip("openssl is not available to make test certificates")
    user, orig = _tls_only_role(pg, "notls")
    value = db_secret(pg, user, orig, ssl=False)
    name, orig_vid = make_secret(psm, value)
    _, rec = wait_failure(psm, rot, name, SINGLE)
    assert rec["FailedStep"] == "setSecret", rec
    assert "no encryption" in rec["Error"], rec["Error"]
    assert pg.can_login(user, orig, sslmode="require")


@pytest.mark.parametrize("own_server", [{"ROTARY_ROTATION_MAX_ATTEMPTS": "1",
                                         "SSL_CERT_FILE": ""}], indirect=True)
def test_tls_with_an_untrusted_certificate(own_server, pg):
    """Without the test CA: `ssl: true` fails on the certificate; without `ssl` the rotator
    falls back to plaintext, as AWS's template does."""
    if not pg.tls:
        pytest.skip("openssl is not available to make test certificates")
    sm, rot = own_server.client(), Rotary(own_server)
    user, orig = role_name("untrusted"), orig_password()
    pg.create_role(user, orig)
    value = db_secret(pg, user, orig, ssl=True)
    name, orig_vid = make_secret(sm, value)
    token, rec = rotate(sm, rot, name, SINGLE)
    assert rec["Outcome"] == "Failed" and rec["FailedStep"] == "setSecret", rec
    assert "invalid peer certificate" in rec["Error"], rec["Error"]
    assert_unchanged(sm, name, orig_vid, value, pg)

    plain, _ = make_secret(sm, db_secret(pg, user, orig))
    new = rotate_ok(sm, rot, plain, SINGLE)
    assert pg.can_login(user, new["password"])


# ------------------------------------------------------------------------------------------
# Zero downtime under continuous use
# ------------------------------------------------------------------------------------------
def pg_login(pg):
    """login(value) for the zero-downtime harness: a NEW connection, then SELECT 1."""

    def login(v) -> tuple[bool, str | None]:
        try:
            with pg.connect(v["username"], v["password"]) as c:
                c.execute("SELECT 1").fetchone()
            return True, None
        except psycopg.OperationalError as e:
            return False, str(e).strip().splitlines()[-1]

    return login


def zero_downtime(psrv, psm, rot, pg, name: str, fn: str, retry: bool) -> dict:
    """The shared harness (zero_downtime.py), paced: 50 rotations while a client logs in
    with AWSCURRENT; afterwards no password it read is in the server log or the history."""
    rotate_ok(psm, rot, name, fn)  # configures the function (and, alternating, the clone)
    seen: set[str] = set()
    figures = run_zero_downtime(psrv, name, fn, pg_login(pg), rotations=ZERO_DOWNTIME_ROTATIONS,
                                retry=retry, paced=True, passwords_seen=seen)
    assert figures["login_attempts"] >= ZERO_DOWNTIME_ROTATIONS, figures
    recs = rot.history(name, max_results=100)
    assert all(r["Outcome"] == "Succeeded" for r in recs), [r["Outcome"] for r in recs]
    log = psrv.log_path.read_text(errors="replace") + json.dumps(recs)
    assert seen and not [pw for pw in seen if pw in log], "a password leaked"
    return {**figures, "tls": pg.tls}


def test_zero_downtime_alternating_users(psrv, psm, rot, pg, master):
    user, orig = role_name("zdalt"), orig_password()
    pg.create_role(user, orig)
    name, _ = make_secret(psm, db_secret(pg, user, orig, masterarn=master))
    figures = zero_downtime(psrv, psm, rot, pg, name, ALTERNATING, retry=False)
    record_perf(PERF_FILE, "alternating_users", figures)
    assert figures["failed_logins"] == 0, figures


def test_zero_downtime_single_user_with_client_retry(psrv, psm, rot, pg):
    """Single user has a window (setSecret → finishSecret) where the database has the new
    password and AWSCURRENT the old one: a client that re-reads AWSCURRENT and retries
    recovers from every failed login while rotations do not outpace it (paced)."""
    user, orig = role_name("zdsingle"), orig_password()
    pg.create_role(user, orig)
    name, _ = make_secret(psm, db_secret(pg, user, orig))
    figures = zero_downtime(psrv, psm, rot, pg, name, SINGLE, retry=True)
    record_perf(PERF_FILE, "single_user", figures)
    assert figures["unrecovered"] == 0, figures
    assert figures["recovered_by_retry"] == figures["failed_logins"], figures
