"""A built-in rotator registered under its own name with its own password policy, through
the `rotary` CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

import rotary_testlib as lib  # noqa: E402
import rotlib  # noqa: E402


def rotary_cli(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=lib.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=lib.SECRET_KEY,
               AWS_REGION=lib.REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER=server.url,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([lib.ROTARY_BIN, *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_builtin_with_its_own_password_policy(server, unique_name):
    fname = unique_name("pw48").replace("/", "-")[:60]
    r = rotary_cli(server, "function", "create", fname, "--builtin", "rotary-generic-password",
                   "--env", "PASSWORD_LENGTH=48", "--env", "EXCLUDE_CHARACTERS=abcdefABCDEF0123",
                   "--output", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Builtin"] == "rotary-generic-password"

    sm = server.client()
    name = unique_name("policy")
    sm.create_secret(Name=name, SecretString='{"username":"app","password":"initial-pw"}')
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=rotlib.lambda_arn(fname))["VersionId"]
    rot = rotlib.Rotary(server)
    rot.wait_outcome(name, token)
    value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert value["username"] == "app"
    assert len(value["password"]) == 48
    assert not set(value["password"]) & set("abcdefABCDEF0123")

    history = rotary_cli(server, "rotation", "history", name)
    assert history.returncode == 0, history.stderr
    assert "Succeeded" in history.stdout and token in history.stdout


def test_builtin_policy_is_validated(server, unique_name):
    fname = unique_name("bad").replace("/", "-")[:60]
    r = rotary_cli(server, "function", "create", fname, "--builtin", "rotary-generic-password",
                   "--env", "PASSWORD_LENGTH=3")
    assert r.returncode == 1
    assert "InvalidParameterException" in r.stderr and "PASSWORD_LENGTH" in r.stderr
    r = rotary_cli(server, "function", "create", fname, "--builtin", "rotary-nope")
    assert r.returncode == 1 and "No built-in function is named rotary-nope" in r.stderr
    r = rotary_cli(server, "function", "create", fname, "--builtin", "rotary-generic-password",
                   "--env", "OTHER=1")
    assert r.returncode == 1 and "OTHER" in r.stderr
    # Nothing was registered.
    r = rotary_cli(server, "function", "describe", fname)
    assert r.returncode == 1 and "ResourceNotFoundException" in r.stderr
