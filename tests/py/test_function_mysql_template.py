"""AWS's Python single-user MySQL rotation template rotates a real MariaDB user from the
function directory (issue 9).

The handler is rotation_fixtures/mysql_single_user/lambda_function.py: our own code shaped
exactly like AWS's SecretsManagerRDSMySQLRotationSingleUser (boto3 with
SECRETS_MANAGER_ENDPOINT, pymysql, `SET PASSWORD` of the user's own password). Rotary(server)
installs it in the server's function directory; the server runs it sandboxed (bubblewrap, as
`nobody` under a root server, private /tmp, data dir hidden, own PID namespace, network
shared) with the function venv's Python. Pass = after a rotation the new AWSCURRENT password
logs in on a new connection, the replaced one does not, AWSPREVIOUS holds the replaced value,
and no password appears in the rotation history; a second rotation does it again. A CodeDir
outside the function directory is refused at registration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import mysql_server
import rotary_testlib as lib
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import FIXTURES, Rotary, pending_free, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not mysql_server.available(),
                                reason="mariadbd / mariadb-install-db not installed")

CODE_DIR = "mysql_single_user"  # relative to the server's function directory
HANDLER = "lambda_function.lambda_handler"
# AWS's default EXCLUDE_CHARACTERS for its MySQL templates: / @ " ' \
FUNCTION_ENV = {"EXCLUDE_CHARACTERS": "/@\"'\\\\"}
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
APP_USER = "app"
APP_PASSWORD = "app-Initial-Pw-0001"
MODULE_ENV = {"ROTARY_ROTATION_MAX_ATTEMPTS": "2", "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1"}


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mdb(tmp_path_factory):
    db = mysql_server.MariaDB(tmp_path_factory.mktemp("mariadb-template"))
    db.start()
    db.sql("CREATE DATABASE appdb")
    db.sql("CREATE TABLE appdb.items (id INT PRIMARY KEY, name VARCHAR(20))")
    db.sql("INSERT INTO appdb.items VALUES (1, 'one'), (2, 'two')")
    db.create_user(APP_USER, APP_PASSWORD, grants=["GRANT SELECT ON appdb.* TO {u}"])
    yield db
    db.cleanup()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = lib.Server(tmp_path_factory.mktemp("function-mysql-template"),
                        name="function-mysql-template", env=MODULE_ENV)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sm(srv):
    return srv.client()


@pytest.fixture(scope="module")
def rot(srv):
    return Rotary(srv)


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def value(sm, name, stage="AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def rotate(sm, rot, name, arn) -> tuple[str, dict]:
    """RotateSecret with the template function; waits for the record's final outcome."""
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    rec = rot.wait_outcome(name, token, timeout=120)
    return token, rec


def explain(rec, srv) -> str:
    """The record's steps (the function's traceback is in Error/Output) and the log tail."""
    return f"{json.dumps(rec, indent=1)[:8000]}\nserver log tail:\n{srv.log_tail(40)}"


def assert_rotated(sm, rot, srv, mdb, name, rec, token, old: dict) -> dict:
    """The rotation `rec` succeeded and replaced `old`; returns the new AWSCURRENT value."""
    assert rec["Outcome"] == "Succeeded", explain(rec, srv)
    assert [s["Step"] for s in rec["Steps"]] == STEPS, explain(rec, srv)

    wait_for(lambda: pending_free(lib.stages(sm, name)), 30, "AWSPENDING cleanup",
             lambda: json.dumps(lib.stages(sm, name)))
    stages = lib.stages(sm, name)
    assert "AWSCURRENT" in stages.get(token, []), stages

    new = value(sm, name)
    assert {k: v for k, v in new.items() if k != "password"} == \
        {k: v for k, v in old.items() if k != "password"}, (new, old)
    assert new["password"] != old["password"]
    assert len(new["password"]) == 32, "GetRandomPassword's default length"
    assert not set(new["password"]) & set("/@\"'\\"), "EXCLUDE_CHARACTERS not honoured"
    assert value(sm, name, "AWSPREVIOUS") == old

    # The database: the new password logs in, the replaced one no longer does.
    assert mdb.reads_items(APP_USER, new["password"]), "the new AWSCURRENT does not log in"
    assert not mdb.can_login(APP_USER, old["password"]), "the replaced password still logs in"

    # The template's own log lines came back as step output; no password did.
    outputs = {s["Step"]: (s.get("Output") or "") for s in rec["Steps"]}
    assert "createSecret: Successfully put secret for ARN" in outputs["createSecret"], outputs
    assert f"setSecret: Successfully set password for user {APP_USER}" in outputs["setSecret"], \
        outputs
    assert "testSecret: Successfully signed into MySQL DB with AWSPENDING secret" in \
        outputs["testSecret"], outputs
    assert "finishSecret: Successfully set AWSCURRENT stage to version " + token in \
        outputs["finishSecret"], outputs
    everything = json.dumps(rot.history(name))
    for pw in (old["password"], new["password"]):
        assert pw not in everything, "a password leaked into the rotation history"
    return new


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------
def test_aws_mysql_template_rotates_a_mariadb_user_from_the_function_directory(
        sm, rot, srv, mdb):
    assert (srv.function_dir / CODE_DIR / "lambda_function.py").is_file(), \
        "Rotary(server) did not install the fixture"
    fn = unique_name("mysql-template")
    arn = rot.create_function(fn, PythonHandler=HANDLER, CodeDir=CODE_DIR, TimeoutSeconds=60,
                              Env=FUNCTION_ENV)
    desc = rot.ok("DescribeFunction", {"Name": arn})
    assert desc.get("Handler") == HANDLER, desc
    assert "/@" not in json.dumps(desc), "Env values must not be returned in clear"

    name = unique_name("mysql-template-secret")
    orig = {"engine": "mysql", "host": mdb.host, "port": mdb.port, "username": APP_USER,
            "password": APP_PASSWORD, "dbname": "appdb"}
    sm.create_secret(Name=name, SecretString=json.dumps(orig))
    assert mdb.reads_items(APP_USER, APP_PASSWORD)

    token1, rec1 = rotate(sm, rot, name, arn)
    first = assert_rotated(sm, rot, srv, mdb, name, rec1, token1, orig)

    # Again: the previous rotation's AWSCURRENT is the one replaced now.
    token2, rec2 = rotate(sm, rot, name, arn)
    assert token2 != token1
    second = assert_rotated(sm, rot, srv, mdb, name, rec2, token2, first)
    assert second["password"] != APP_PASSWORD
    assert not mdb.can_login(APP_USER, APP_PASSWORD)
    # The whole history (both records) carries none of the three passwords.
    everything = json.dumps(rot.history(name))
    for pw in (APP_PASSWORD, first["password"], second["password"]):
        assert pw not in everything


def test_template_code_dir_outside_the_function_directory_is_refused(rot, srv):
    names_before = {f["Name"] for f in rot.ok("ListFunctions")["Functions"]}
    outside = [
        str(FIXTURES / CODE_DIR),                 # the same handler, in the repository
        str(srv.function_dir / ".." / ".." / CODE_DIR),
        f"../{srv.function_dir.name}/../..",      # relative, climbing out
        "..",                                     # the data directory itself
    ]
    for code_dir in outside:
        fn = unique_name("mysql-outside")
        r = rot.call("CreateFunction", {"Name": fn, "PythonHandler": HANDLER,
                                        "CodeDir": code_dir, "TimeoutSeconds": 60,
                                        "Env": FUNCTION_ENV})
        assert r.status == 400, (code_dir, r.status, r.body[:500])
        assert r.json["__type"].endswith("InvalidParameterException"), (code_dir, r.json)
        assert r.json.get("message") or r.json.get("Message"), r.json
    assert {f["Name"] for f in rot.ok("ListFunctions")["Functions"]} == names_before
