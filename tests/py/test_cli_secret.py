"""`rotary secret …` and the other client commands of issue 10, over the real binary:
values from standard input and files, tables and --output json, exit codes and one-line
errors, a closed pipe, completions, `rotary rotation reset`, `rotary function delete`
refusing a function in use, `rotary compliance` listing a failing rotation, and the shell
examples of README.md and docs/*.md marked runnable (```sh runnable).

See: #10
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import rotary_testlib as lib

NOT_FOUND_CODE = "ResourceNotFoundException"


def cli_env(url: str | None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=lib.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=lib.SECRET_KEY,
               AWS_REGION=lib.REGION, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
    if url:
        env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = url
    env.update(extra)
    return env


def run(server, *args, stdin: bytes | str | None = None, env: dict | None = None,
        text: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs the rotary binary against `server` (stdin closed unless given)."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    p = subprocess.run([lib.ROTARY_BIN, *map(str, args)],
                       env=env or cli_env(server.url if server else None),
                       input=stdin if stdin is not None else b"",
                       capture_output=True, timeout=timeout)
    if text:
        p.stdout = p.stdout.decode(errors="replace")
        p.stderr = p.stderr.decode(errors="replace")
    return p


def ok(p: subprocess.CompletedProcess):
    assert p.returncode == 0, f"rc={p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert "panicked" not in p.stderr, p.stderr
    return p.stdout


def js(p: subprocess.CompletedProcess):
    return json.loads(ok(p))


def one_line_error(p: subprocess.CompletedProcess, *needles: str, rc: int = 1) -> str:
    assert p.returncode == rc, f"rc={p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "panicked" not in err
    for n in needles:
        assert n in err, err
    return err


# ------------------------------------------------------------------------------------------
# create / get / put / update / describe
# ------------------------------------------------------------------------------------------
def test_create_from_stdin_and_get(server, sm, unique_name):
    name = unique_name("cs")
    value = '{"username":"app","password":"p@ss w0rd"}'
    out = ok(run(server, "secret", "create", name, "--description", "d1", "--tag", "env=prod",
                 stdin=value + "\n"))
    assert name in out and "version" in out
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "env", "Value": "prod"}]
    # The bare value, no newline (stdout is a pipe), exactly as stored.
    assert ok(run(server, "secret", "get", name)) == value
    assert ok(run(server, "secret", "get", name, "--json-key", "password")) == "p@ss w0rd"
    full = js(run(server, "secret", "get", name, "--output", "json"))
    assert full["SecretString"] == value and full["Name"] == name
    assert full["VersionStages"] == ["AWSCURRENT"]


def test_value_flags_file_and_dash(server, sm, unique_name, tmp_path):
    name = unique_name("cs")
    f = tmp_path / "v.txt"
    f.write_text("from-file\n")
    ok(run(server, "secret", "create", name, "--value-file", f))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "from-file"
    ok(run(server, "secret", "put", name, "--value", "-", stdin="from-dash"))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "from-dash"
    ok(run(server, "secret", "put", name, "--value-file", "-", stdin="from-file-dash\n"))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "from-file-dash"
    out = ok(run(server, "secret", "put", name, "--value", "inline"))
    assert "AWSCURRENT" in out
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "inline"
    assert ok(run(server, "secret", "get", name, "--version-stage", "AWSPREVIOUS")) == \
        "from-file-dash"


def test_binary_round_trip(server, sm, unique_name, tmp_path):
    name = unique_name("csbin")
    data = b"\x00\x01\xff\n" + os.urandom(200) + b"\n"
    f = tmp_path / "blob"
    f.write_bytes(data)
    ok(run(server, "secret", "create", name, "--value-file", f, "--binary"))
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == data
    p = run(server, "secret", "get", name, text=False)
    assert p.returncode == 0 and p.stdout == data
    g = js(run(server, "secret", "get", name, "--output", "json"))
    assert base64.b64decode(g["SecretBinary"]) == data
    # Bytes that are not UTF-8 need --binary.
    p = run(server, "secret", "put", name, "--value-file", f)
    one_line_error(p, "--binary", rc=2)


def test_put_version_stage_and_update(server, sm, unique_name):
    name = unique_name("cs")
    ok(run(server, "secret", "create", name, "--value", "a"))
    p = js(run(server, "secret", "put", name, "--version-stage", "STAGED", "--output", "json",
               stdin="b"))
    assert p["VersionStages"] == ["STAGED"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "a"
    out = ok(run(server, "secret", "update", name, "--description", "changed"))
    assert "Updated" in out
    assert sm.describe_secret(SecretId=name)["Description"] == "changed"
    ok(run(server, "secret", "update", name, "--value", "-", stdin="c"))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "c"
    # update with nothing to change is a usage error and changes nothing.
    p = run(server, "secret", "update", name)
    one_line_error(p, "nothing to update", rc=2)


def test_describe_text_and_json(server, sm, unique_name):
    name = unique_name("csd")
    ok(run(server, "secret", "create", name, "--value", "describe-canary", "--description", "db",
           "--tag", "team=core"))
    out = ok(run(server, "secret", "describe", name))
    assert re.search(rf"^Name:\s+{re.escape(name)}$", out, re.M), out
    assert re.search(r"^RotationStatus:\s+Disabled$", out, re.M), out
    assert re.search(r"^Tags:\s+team=core$", out, re.M), out
    assert "AWSCURRENT" in out
    # The value is never shown (a one-letter value could match the ARN's random suffix).
    assert "describe-canary" not in out
    d = js(run(server, "secret", "describe", name, "--output", "json"))
    assert d["Name"] == name and d["Description"] == "db"


def test_json_key_errors_never_show_value(server, unique_name):
    name = unique_name("csj")
    ok(run(server, "secret", "create", name, "--value", "not-json-canary"))
    p = run(server, "secret", "get", name, "--json-key", "password")
    err = one_line_error(p, name, "not a JSON object")
    assert "canary" not in err and "canary" not in p.stdout
    name2 = unique_name("csj")
    ok(run(server, "secret", "create", name2, "--value", '{"user":"canary-u"}'))
    p = run(server, "secret", "get", name2, "--json-key", "password")
    err = one_line_error(p, name2, '"password"')
    assert "canary" not in err


# ------------------------------------------------------------------------------------------
# list / versions / tags / delete / restore
# ------------------------------------------------------------------------------------------
def test_list_table_and_json(server, unique_name):
    prefix = unique_name("csl")
    names = [f"{prefix}/{i}" for i in range(3)]
    for n in names:
        ok(run(server, "secret", "create", n, "--value", "v", "--description", "listed"))
    out = ok(run(server, "secret", "list", "--filter", f"name={prefix}"))
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "LAST"], lines[0]
    assert sorted(ln.split()[0] for ln in lines[1:]) == names
    assert all("Disabled" in ln for ln in lines[1:])
    j = js(run(server, "secret", "list", "--filter", f"name={prefix}", "--output", "json"))
    assert sorted(e["Name"] for e in j["SecretList"]) == names
    assert "NextToken" not in j


def test_list_follows_pages(server, sm, unique_name):
    prefix = unique_name("cslp")
    names = [f"{prefix}/{i:03d}" for i in range(105)]
    for n in names:
        sm.create_secret(Name=n, SecretString="x")
    j = js(run(server, "secret", "list", "--filter", f"name={prefix}", "--output", "json"))
    got = [e["Name"] for e in j["SecretList"]]
    assert sorted(got) == names and len(got) == len(set(got))


def test_versions_table(server, unique_name):
    name = unique_name("csv")
    v1 = js(run(server, "secret", "create", name, "--value", "a", "--output", "json"))["VersionId"]
    v2 = js(run(server, "secret", "put", name, "--value", "b", "--output", "json"))["VersionId"]
    out = ok(run(server, "secret", "versions", name))
    lines = out.splitlines()
    assert lines[0].startswith("VERSION ID") and "STAGES" in lines[0]
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[1:]}
    assert rows == {v1: "AWSPREVIOUS", v2: "AWSCURRENT"}
    j = js(run(server, "secret", "versions", name, "--output", "json"))
    assert {v["VersionId"] for v in j["Versions"]} == {v1, v2}


def test_tag_untag(server, sm, unique_name):
    name = unique_name("cst")
    ok(run(server, "secret", "create", name, "--value", "x"))
    ok(run(server, "secret", "tag", name, "env=prod", "team=core"))
    assert sm.describe_secret(SecretId=name)["Tags"] == [
        {"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "core"}]
    ok(run(server, "secret", "untag", name, "env"))
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "team", "Value": "core"}]
    one_line_error(run(server, "secret", "tag", name, "novalue"), "KEY=VALUE", rc=2)


def test_delete_restore_force(server, sm, unique_name):
    name = unique_name("csdel")
    ok(run(server, "secret", "create", name, "--value", "x"))
    out = ok(run(server, "secret", "delete", name, "--recovery-window-in-days", "7"))
    assert "Scheduled" in out and "restore" in out
    assert "DeletedDate" in sm.describe_secret(SecretId=name)
    # A secret scheduled for deletion: the server's error, naming the secret.
    one_line_error(run(server, "secret", "get", name), name, "InvalidRequestException")
    listed = ok(run(server, "secret", "list", "--filter", f"name={name}",
                    "--include-planned-deletion"))
    assert name in listed and "deleted" in listed
    ok(run(server, "secret", "restore", name))
    assert ok(run(server, "secret", "get", name)) == "x"
    out = ok(run(server, "secret", "delete", name, "--force-delete-without-recovery"))
    assert "for good" in out
    one_line_error(run(server, "secret", "describe", name), name, NOT_FOUND_CODE)


# ------------------------------------------------------------------------------------------
# Errors and exit codes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["get"], ["describe"], ["versions"], ["history"], ["restore"], ["delete"],
    ["cancel-rotation"], ["rotate"], ["tag", "{name}", "k=v"], ["untag", "{name}", "k"],
    ["put", "{name}", "--value", "x"], ["update", "{name}", "--description", "d"],
])
def test_missing_secret_one_line_error(server, unique_name, args):
    name = unique_name("missing")
    argv = [a.format(name=name) for a in args]
    if "{name}" not in args:
        argv.append(name)
    p = run(server, "secret", *argv)
    err = one_line_error(p, name, NOT_FOUND_CODE)
    assert err.startswith("rotary: secret "), err
    assert p.stdout == ""


def test_create_existing_fails_and_keeps_value(server, sm, unique_name):
    name = unique_name("csex")
    ok(run(server, "secret", "create", name, "--value", "first"))
    one_line_error(run(server, "secret", "create", name, "--value", "second"), name,
                   "ResourceExistsException")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first"


def test_usage_errors_exit_2(server, unique_name, tmp_path):
    name = unique_name("csu")
    # no value at all for put (stdin empty)
    one_line_error(run(server, "secret", "put", name), "no value", rc=2)
    one_line_error(run(server, "secret", "create", name, "--value-file", tmp_path / "nope"),
                   "--value-file", rc=2)
    p = run(server, "secret", "create", name, "--value", "a", "--value-file", "x")
    assert p.returncode == 2 and "cannot be used with" in p.stderr
    p = run(server, "secret", "get", name, "--output", "yaml")
    one_line_error(p, "--output", rc=2)
    p = run(server, "secret", "frobnicate")
    assert p.returncode == 2


def test_server_unreachable_exit_1(unique_name):
    port = lib.free_port()
    p = run(None, "secret", "get", "x", env=cli_env(f"http://127.0.0.1:{port}"))
    assert p.returncode == 1, p.stderr
    assert "panicked" not in p.stderr


def test_endpoint_without_scheme_is_http(server, unique_name):
    name = unique_name("cse")
    hostport = server.url.removeprefix("http://")
    ok(run(server, "secret", "create", name, "--value", "v", "--endpoint-url", hostport))
    assert ok(run(server, "secret", "get", name, "--endpoint-url", hostport)) == "v"
    p = run(server, "secret", "get", name, "--endpoint-url", "ftp://h")
    one_line_error(p, "http://", rc=2)


def test_profile_selects_credentials_and_endpoint(server, unique_name, tmp_path):
    name = unique_name("csp")
    cfg = tmp_path / "config"
    cfg.write_text(f"[profile rotary-test]\nregion = {lib.REGION}\nendpoint_url = {server.url}\n")
    creds = tmp_path / "credentials"
    creds.write_text(f"[rotary-test]\naws_access_key_id = {lib.ACCESS_KEY}\n"
                     f"aws_secret_access_key = {lib.SECRET_KEY}\n"
                     "[default]\naws_access_key_id = AKIAWRONG0000000000\n"
                     "aws_secret_access_key = wrong\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(cfg), AWS_SHARED_CREDENTIALS_FILE=str(creds),
               AWS_EC2_METADATA_DISABLED="true")
    ok(run(None, "secret", "create", name, "--value", "p", "--profile", "rotary-test", env=env))
    assert ok(run(None, "secret", "get", name, "--profile", "rotary-test", env=env)) == "p"
    # The default profile's wrong key is refused by the server.
    p = run(None, "secret", "get", name, "--endpoint-url", server.url, env=env)
    assert p.returncode == 1 and "UnrecognizedClientException" in p.stderr


# ------------------------------------------------------------------------------------------
# Closed pipe, completions, schedule preview without a server
# ------------------------------------------------------------------------------------------
def test_closed_pipe_is_quiet(server, sm, unique_name):
    prefix = unique_name("cshead")
    for i in range(30):
        sm.create_secret(Name=f"{prefix}/{i:02d}", SecretString="x", Description="d" * 200)
    env = cli_env(server.url)
    for argv in (["secret", "list"], ["completions", "bash"],
                 ["schedule", "preview", "rate(4 hours)", "--count", "100"]):
        p = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{lib.ROTARY_BIN} {' '.join(repr(a) for a in argv)} | head -n 1"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert "panicked" not in p.stderr and p.stderr == "", (argv, p.stderr)
        assert p.stdout.count("\n") == 1
        assert p.returncode in (0, 141), (argv, p.returncode)
    # A reader that is gone before anything is written: every write fails with EPIPE.
    codes = []
    for argv in (["secret", "list"], ["secret", "get", f"{prefix}/00"], ["function", "list"],
                 ["secret", "versions", f"{prefix}/00"], ["completions", "zsh"]):
        p = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{lib.ROTARY_BIN} {' '.join(repr(a) for a in argv)} | true"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.stderr == "", (argv, p.stderr)
        assert p.returncode in (0, 141), (argv, p.returncode)
        codes.append(p.returncode)
    assert 141 in codes, codes


@pytest.mark.parametrize("shell,needle", [
    ("bash", "complete -F _rotary"), ("zsh", "#compdef rotary"), ("fish", "complete -c rotary"),
])
def test_completions(shell, needle):
    p = run(None, "completions", shell)
    out = ok(p)
    assert needle in out
    assert "secret" in out and "json-key" in out


def test_completions_bad_shell():
    assert run(None, "completions", "tcsh").returncode == 2


def test_schedule_preview_needs_no_server():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{lib.free_port()}",
               AWS_EC2_METADATA_DISABLED="true")
    out = ok(run(None, "schedule", "preview", "cron(0 8 ? * MON-FRI *)", "--duration", "2h",
                 "--count", "5", env=env))
    lines = out.splitlines()
    assert lines[1].startswith("WINDOW START")
    rows = lines[2:]
    assert len(rows) == 5 and all(" 08:00:00Z" in r and "09:59:59Z" in r for r in rows), out
    j = js(run(None, "schedule", "preview", "rate(12 hours)", "--count", "2", "--output", "json",
               env=env))
    assert len(j["Windows"]) == 2
    assert j["Windows"][1]["Start"] - j["Windows"][0]["Start"] == 12 * 3600
    days = js(run(None, "schedule", "preview", "30", "--output", "json", env=env))
    assert days["AutomaticallyAfterDays"] == 30
    one_line_error(run(None, "schedule", "preview", "cron(bad)", env=env), "cron(bad)", rc=2)


# ------------------------------------------------------------------------------------------
# Rotation: rotate, history, cancel, failing rotation, compliance, reset, function delete
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slow_retry_server(tmp_path_factory):
    """Retries far apart, so a failing rotation stays 'retrying' while the test looks."""
    srv = lib.Server(tmp_path_factory.mktemp("cli-rotation"), name="cli-rotation",
                     env={"ROTARY_ROTATION_RETRY_BASE_SECONDS": "3600"})
    srv.start()
    yield srv
    srv.stop()


def wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_rotate_history_cancel(server, sm, unique_name):
    name = unique_name("csr")
    ok(run(server, "secret", "create", name, "--value", '{"username":"u","password":"old"}'))
    out = ok(run(server, "secret", "rotate", name, "--function", "rotary-generic-password",
                 "--schedule", "cron(0 8 ? * MON-FRI *)", "--duration", "2h"))
    assert "Rotating" in out

    def done():
        d = sm.describe_secret(SecretId=name)
        return len(d["VersionIdsToStages"]) == 2 and all(
            "AWSPENDING" not in s for s in d["VersionIdsToStages"].values())
    wait_for(done, what="rotation")
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"] != "old"
    hist = ok(run(server, "secret", "history", name))
    lines = hist.splitlines()
    assert lines[0].startswith(name)
    assert lines[1].split()[:2] == ["STARTED", "OUTCOME"]
    assert "Succeeded" in lines[2]
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        assert step in hist
    assert ok(run(server, "rotation", "history", name)) == hist
    d = ok(run(server, "secret", "describe", name))
    assert re.search(r"^RotationStatus:\s+Enabled$", d, re.M), d
    assert "cron(0 8 ? * MON-FRI *), window 2h" in d
    assert "rotary-generic-password" in d
    ok(run(server, "secret", "cancel-rotation", name))
    assert sm.describe_secret(SecretId=name)["RotationEnabled"] is False
    j = js(run(server, "secret", "history", name, "--output", "json"))
    assert j["Rotations"][0]["Outcome"] == "Succeeded"
    # The text shows each step's output under the step, as in the JSON.
    outputs = [st["Output"] for st in j["Rotations"][0]["Steps"] if st.get("Output", "").strip()]
    assert outputs, j["Rotations"][0]
    for out in outputs:
        for line in out.strip().splitlines():
            assert f"| {line}" in hist, (line, hist)


def test_rotate_unknown_function_names_it(server, unique_name):
    name = unique_name("csr")
    ok(run(server, "secret", "create", name, "--value", "x"))
    p = run(server, "secret", "rotate", name, "--function", "no-such-fn")
    one_line_error(p, "no-such-fn", NOT_FOUND_CODE)


def test_failing_rotation_compliance_reset_and_function_delete(slow_retry_server, unique_name):
    srv = slow_retry_server
    sm = srv.client()
    fn = unique_name("broken").replace("/", "-")[:60]
    ok(run(srv, "function", "create", fn, "--url", "http://127.0.0.1:1/rotate"))
    name = unique_name("csfail")
    v1 = js(run(srv, "secret", "create", name, "--value", '{"password":"a"}', "--output",
                "json"))["VersionId"]
    ok(run(srv, "secret", "rotate", name, "--function", fn))

    def retrying():
        recs = js(run(srv, "secret", "history", name, "--output", "json"))["Rotations"]
        return recs and recs[0]["Outcome"] == "Retrying" and recs[0]
    rec = wait_for(retrying, what="a failed attempt")
    pending = rec["Token"]

    # History in text: the failed step, its error, and when the next attempt is due.
    hist = ok(run(srv, "secret", "history", name))
    assert "Retrying" in hist and "createSecret" in hist
    assert re.search(r"next attempt: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", hist), hist

    # Compliance lists it while it is being retried.
    comp = ok(run(srv, "compliance"))
    block = comp.split(name, 1)[1] if name in comp else ""
    assert "RotationFailing" in block and "due at" in block, comp
    cj = js(run(srv, "compliance", "--output", "json"))
    entry = next(s for s in cj["Secrets"] if s["Name"] == name)
    assert any(f["Check"] == "RotationFailing" for f in entry["Findings"])

    # The function is in use: delete is refused with the secret's name, --force deletes.
    p = run(srv, "function", "delete", fn)
    err = one_line_error(p, fn, name, "--force")
    assert "function policy" not in err
    assert fn in ok(run(srv, "function", "list"))

    # Re-pointing does not help while AWSPENDING is there (AWS's behaviour) ...
    p = run(srv, "secret", "rotate", name, "--function", "rotary-generic-password")
    one_line_error(p, "A previous rotation isn't complete")

    # ... reset: shows what it will do, refuses without --yes when stdin is not a terminal.
    p = run(srv, "rotation", "reset", name)
    assert p.returncode == 2 and "--yes" in p.stderr
    assert f"AWSPENDING:  version {pending}" in p.stdout
    assert f"AWSCURRENT:  version {v1}" in p.stdout
    assert "AWSPENDING" in sm.describe_secret(SecretId=name)["VersionIdsToStages"][pending]
    out = ok(run(srv, "rotation", "reset", name, "--yes"))
    assert f"Removed AWSPENDING from version {pending}" in out
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[v1] == ["AWSCURRENT"]
    assert "AWSPENDING" not in stages.get(pending, [])
    assert "nothing" not in out
    again = ok(run(srv, "rotation", "reset", name, "--yes"))
    assert "no rotation to reset" in again
    cj = js(run(srv, "compliance", "--output", "json"))
    entry = next((s for s in cj["Secrets"] if s["Name"] == name), {"Findings": []})
    assert not any(f["Check"] == "RotationFailing" for f in entry["Findings"]), entry

    # Now a fixed function rotates it.
    ok(run(srv, "secret", "rotate", name, "--function", "rotary-generic-password"))

    def rotated():
        st = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
        cur = [v for v, s in st.items() if "AWSCURRENT" in s]
        return cur and cur[0] != v1 and not any("AWSPENDING" in s for s in st.values())
    wait_for(rotated, what="the rotation with the fixed function")
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"] != "a"

    # No secret uses the broken function any more: delete works (--force not needed).
    ok(run(srv, "function", "delete", fn))


def test_function_delete_force(slow_retry_server, unique_name):
    srv = slow_retry_server
    fn = unique_name("inuse").replace("/", "-")[:60]
    ok(run(srv, "function", "create", fn, "--builtin", "rotary-generic-password",
           "--env", "PASSWORD_LENGTH=40"))
    name = unique_name("csforce")
    ok(run(srv, "secret", "create", name, "--value", "x"))
    ok(run(srv, "secret", "rotate", name, "--function", fn, "--no-rotate-immediately"))
    one_line_error(run(srv, "function", "delete", fn), "--force")
    assert "Deleted" in ok(run(srv, "function", "delete", fn, "--force"))
    one_line_error(run(srv, "function", "describe", fn), NOT_FOUND_CODE)


def test_function_list_and_describe_consistent(slow_retry_server, unique_name):
    srv = slow_retry_server
    fn = unique_name("desc").replace("/", "-")[:60]
    ok(run(srv, "function", "create", fn, "--url", "http://127.0.0.1:1/x", "--env", "A=secret-a",
           "--timeout", "10"))
    out = ok(run(srv, "function", "list"))
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "ARN"]
    kinds = {ln.split()[0]: ln.split()[1] for ln in lines[1:]}
    assert kinds["rotary-generic-password"] == "built-in"
    assert kinds[fn] == "http"
    d = ok(run(srv, "function", "describe", fn))
    fields = [ln.split(":", 1)[0] for ln in d.splitlines()]
    assert fields[:3] == ["Name", "Kind", "ARN"], d
    assert re.search(r"^EnvNames:\s+A$", d, re.M), d
    assert "secret-a" not in d
    b = ok(run(srv, "function", "describe", "rotary-generic-password"))
    assert [ln.split(":", 1)[0] for ln in b.splitlines()][:3] == ["Name", "Kind", "ARN"]
    assert re.search(r"^Kind:\s+built-in$", b, re.M)
    listed = {f["Name"]: f for f in js(run(srv, "function", "list", "--output", "json"))
              ["Functions"]}
    assert listed[fn]["Kind"] == "http" and listed["rotary-generic-password"]["Kind"] == "built-in"
    assert js(run(srv, "function", "describe", fn, "--output", "json"))["Kind"] == "http"
    ok(run(srv, "function", "delete", fn))


def test_function_create_help_shows_builtin():
    out = ok(run(None, "function", "create", "--help"))
    assert "--builtin" in out and "--url" in out and "--python-handler" in out


# ------------------------------------------------------------------------------------------
# Server start-up and /health (issue 10's list)
# ------------------------------------------------------------------------------------------
def test_port_taken_creates_nothing_and_prints_once(server, tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTARY_")}
    p = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(data), "--listen",
                        server.url.removeprefix("http://")],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    assert not data.exists()
    assert "AWS_SECRET_ACCESS_KEY" not in p.stdout + p.stderr
    hits = [ln for ln in (p.stdout + p.stderr).splitlines() if "listening on" in ln]
    assert len(hits) == 1, p.stdout + p.stderr


def test_config_error_exits_2(tmp_path):
    p = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--listen",
                        f"127.0.0.1:{lib.free_port()}", "--tls-cert", str(tmp_path / "nope.pem"),
                        "--tls-key", str(tmp_path / "nope.key")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "TLS" in p.stderr


def test_health_is_plain_json(server):
    import urllib.request
    with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert json.loads(r.read()) == {"status": "ok"}


# ------------------------------------------------------------------------------------------
# The documentation's runnable examples
# ------------------------------------------------------------------------------------------
REPO = Path(lib.REPO)
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```sh runnable\n(.*?)^```", re.M | re.S)


def runnable_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


def test_runnable_blocks_are_marked():
    marked = {p.name: len(runnable_blocks(p)) for p in DOC_FILES}
    assert marked["README.md"] >= 4, marked
    assert marked["cli.md"] >= 1 and marked["rotators.md"] >= 1 and marked["rotation.md"] >= 1


@pytest.mark.parametrize("doc", [p for p in DOC_FILES if runnable_blocks(p)],
                         ids=lambda p: p.name)
def test_docs_runnable_examples(doc, tmp_path):
    """Every ```sh runnable block of the file, in order, in one fresh server's environment
    (the quick start's exports done for it), with `rotary` on PATH."""
    srv = lib.Server(tmp_path / "srv", name="docs")
    srv.start()
    try:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "rotary").symlink_to(lib.ROTARY_BIN)
        work = tmp_path / "work"
        work.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        env = cli_env(srv.url, AWS_DEFAULT_REGION=lib.REGION, AWS_PAGER="", HOME=str(home),
                      AWS_MAX_ATTEMPTS="1")
        env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        for i, block in enumerate(runnable_blocks(doc)):
            p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                               capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
            assert p.returncode == 0, (
                f"{doc.name} block {i} failed (rc={p.returncode}):\n{block}\n"
                f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
            assert "panicked" not in p.stderr
    finally:
        srv.stop()


def test_exclude_characters_examples_are_valid_shell():
    want = ":/@\"'\\;`$"
    for doc in (REPO / "docs" / "rotators.md", REPO / "docs" / "cli.md"):
        for m in re.finditer(r"--env (EXCLUDE_CHARACTERS=\S+)", doc.read_text()):
            word = m.group(1)
            if word == "EXCLUDE_CHARACTERS=CHARS" or word.endswith("CHARS]"):
                continue
            p = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True,
                               text=True, timeout=10)
            assert p.returncode == 0, (doc.name, word, p.stderr)
            got = p.stdout.removeprefix("EXCLUDE_CHARACTERS=")
            assert set(got) <= set(want) and ":" in got and "'" in got, (doc.name, word, got)


def test_rotation_reset_asks_on_a_terminal(slow_retry_server, unique_name):
    """Without --yes, reset asks on the terminal; anything but y changes nothing."""
    import pty

    srv = slow_retry_server
    sm = srv.client()
    fn = unique_name("broken2").replace("/", "-")[:60]
    ok(run(srv, "function", "create", fn, "--url", "http://127.0.0.1:1/rotate"))
    name = unique_name("csask")
    ok(run(srv, "secret", "create", name, "--value", "v"))
    ok(run(srv, "secret", "rotate", name, "--function", fn))
    rec = wait_for(lambda: (r := js(run(srv, "secret", "history", name, "--output", "json"))
                            ["Rotations"]) and r[0]["Outcome"] == "Retrying" and r[0],
                   what="a failed attempt")

    def reset_answering(answer: str) -> subprocess.CompletedProcess:
        master, slave = pty.openpty()
        try:
            os.write(master, answer.encode() + b"\n")
            return subprocess.run([lib.ROTARY_BIN, "rotation", "reset", name],
                                  env=cli_env(srv.url), stdin=slave, capture_output=True,
                                  text=True, timeout=60)
        finally:
            os.close(slave)
            os.close(master)

    p = reset_answering("n")
    assert p.returncode == 0 and "Nothing changed." in p.stdout, p
    assert "[y/N]" in p.stdout
    assert "AWSPENDING" in sm.describe_secret(SecretId=name)["VersionIdsToStages"][rec["Token"]]
    p = reset_answering("y")
    assert p.returncode == 0 and "Removed AWSPENDING" in p.stdout, p
    assert "AWSPENDING" not in sm.describe_secret(SecretId=name)["VersionIdsToStages"].get(
        rec["Token"], [])
    ok(run(srv, "secret", "cancel-rotation", name))
    ok(run(srv, "function", "delete", fn, "--force"))
