"""What a rotation function can reach (issue #9), tried as an attacker would, against the real
binary running as the CI user (root): functions come only from the operator's function
directory, run without a shell in a bubblewrap sandbox as an unprivileged user, and see none
of the server's keys, files, environment or processes; nothing they start outlives the step.
Also: Env sealed at rest and shown by name only, session credentials redacted from the
history, and the modes of the data directory's files.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import rotary_testlib as lib
from rotary_testlib import unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import FINAL_OUTCOMES, Rotary, wait_for  # noqa: E402


@pytest.fixture
def own_server(tmp_path):
    """A private server whose failed rotations fail at once (one attempt)."""
    srv = lib.Server(tmp_path / "own", name="own", env={"ROTARY_ROTATION_MAX_ATTEMPTS": "1"})
    srv.start()
    yield srv
    srv.stop()


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _arg0_alive(arg0: str) -> bool:
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            first = (d / "cmdline").read_bytes().split(b"\0")[0]
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if first == arg0.encode() and state != "Z":
            return True
    return False


def _rotate_once(sm, rot, fn_arn: str, prefix: str) -> dict:
    name = unique_name(prefix)
    sm.create_secret(Name=name, SecretString=json.dumps({"username": "u", "password": "p-orig-1"}))
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=fn_arn)["VersionId"]
    return rot.wait_outcome(name, token, outcomes=("Failed", "Succeeded"), timeout=60)


PROBE = r"""
data={data}
echo "uid=$(id -u)"
for f in "$data/master.key" "$data/rotary.db" "$data/rotary.db-wal" "$data/root-credentials" \
         "$data/signing.key"; do
    if head -c 64 "$f" >/dev/null 2>&1; then echo "READ $f"; else echo "denied $f"; fi
done
ls "$data" 2>/dev/null | grep -v '^functions$' | sed 's/^/LISTED /'
for e in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$e" 2>/dev/null | grep -q ROTARY_ROOT_SECRET_ACCESS_KEY; then
        echo "ENVIRON-LEAK $e"
    fi
done
echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
if echo x > {fndir}/planted 2>/dev/null; then echo "WROTE-FUNCTION-DIR"; fi
setsid sh -c 'exec -a {canary} sleep 300' </dev/null >/dev/null 2>&1 &
echo "probe-done"
exit 1
"""


def test_function_reaches_no_key_file_environ_or_process_and_leaves_nothing_behind(own_server):
    srv = own_server
    sm, rot = srv.client(), Rotary(srv)
    canary = f"rotary-escape-{uuid.uuid4().hex[:10]}"
    data = srv.data_dir.resolve()
    cmd = rot.script("probe.sh", PROBE.format(data=data, fndir=srv.function_dir.resolve(),
                                              canary=canary))
    arn = rot.create_function("probe", Command=cmd, TimeoutSeconds=30)
    rec = _rotate_once(sm, rot, arn, "sbx-probe")
    out = "\n".join(s.get("Output", "") for s in rec["Steps"])
    assert "probe-done" in out, rec
    assert "uid=65534" in out, out  # root server: the step runs as nobody
    for name in ("master.key", "rotary.db", "root-credentials", "signing.key"):
        assert f"denied {data / name}" in out, out
    assert "READ " not in out and "LISTED " not in out, out
    assert "ENVIRON-LEAK" not in out, out
    assert "WROTE-FUNCTION-DIR" not in out and not (srv.function_dir / "planted").exists()
    # Its own PID namespace: a handful of processes, never the host's.
    procs = int(out.split("processes=")[1].split()[0])
    assert procs < 10, out
    # The setsid child is gone with the step.
    wait_for(lambda: not _arg0_alive(canary), 10, f"the escaped child {canary} to be gone")
    # The master key's bytes never reached the history.
    key = (data / "master.key").read_bytes()
    assert key.hex() not in out and lib.SECRET_KEY not in out


def test_program_swapped_for_a_symlink_after_registration_is_refused_at_run(own_server):
    srv = own_server
    sm, rot = srv.client(), Rotary(srv)
    cmd = rot.script("swapped.sh", "exit 0")
    arn = rot.create_function("swapped", Command=cmd, TimeoutSeconds=10)
    target = srv.function_dir / "swapped.sh"
    target.unlink()
    target.symlink_to("/bin/true")
    rec = _rotate_once(sm, rot, arn, "sbx-swapped")
    assert rec["Outcome"] == "Failed", rec
    assert "not inside the function directory" in rec["Steps"][-1]["Error"], rec


def test_session_credentials_are_redacted_from_the_history(own_server):
    srv = own_server
    sm, rot = srv.client(), Rotary(srv)
    seen = lib.function_writable_dir("creds")
    cmd = rot.script("leaky.sh", f"""
echo "key=$AWS_SECRET_ACCESS_KEY token=$AWS_SESSION_TOKEN"
printf '%s\\n%s\\n' "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" > {seen}/creds
echo "secret $AWS_SECRET_ACCESS_KEY" >&2
exit 1""")
    arn = rot.create_function("leaky", Command=cmd, TimeoutSeconds=10)
    rec = _rotate_once(sm, rot, arn, "sbx-leaky")
    secret, token = (seen / "creds").read_text().split()
    assert len(secret) >= 20 and len(token) >= 20
    text = json.dumps(rot.history(rec["ARN"]))
    assert secret not in text and token not in text, text
    assert "key=[REDACTED] token=[REDACTED]" in text, text


def test_function_env_is_sealed_at_rest_and_shown_by_name(tmp_path):
    srv = lib.Server(tmp_path / "env", name="env", env={"ROTARY_ROTATION_MAX_ATTEMPTS": "1"})
    srv.start()
    try:
        rot = Rotary(srv)
        canary = f"env-canary-{uuid.uuid4().hex}"
        out = rot.ok("CreateFunction", {"Name": "sealed", "Command": "true",
                                        "Env": {"API_TOKEN": canary, "MODE": "x"}})
        assert out["EnvNames"] == ["API_TOKEN", "MODE"] and "Env" not in out, out
        desc = rot.ok("DescribeFunction", {"Name": "sealed"})
        listed = rot.ok("ListFunctions")
        assert canary not in json.dumps(desc) + json.dumps(listed)
        # The value still reaches the function.
        seen = lib.function_writable_dir("env")
        cmd = rot.script("show-env.sh", f'printf %s "$API_TOKEN" > {seen}/token')
        rot.ok("CreateFunction", {"Name": "show", "Command": cmd,
                                  "Env": {"API_TOKEN": canary}})
        sm = srv.client()
        _rotate_once(sm, rot, rot.ok("DescribeFunction", {"Name": "show"})["FunctionArn"],
                     "sbx-env")
        assert (seen / "token").read_text() == canary
        srv.restart()  # SIGKILL: whatever is in the WAL stays there
        assert Rotary(srv).ok("DescribeFunction", {"Name": "sealed"})["EnvNames"] == [
            "API_TOKEN", "MODE"]
    finally:
        srv.kill()
    for f in srv.data_dir.rglob("*"):
        if f.is_file():
            assert canary.encode() not in f.read_bytes(), f


def test_data_dir_and_files_are_private_and_loose_modes_are_tightened(tmp_path):
    srv = lib.Server(tmp_path / "modes", name="modes")
    srv.start()
    sm = srv.client()
    sm.create_secret(Name=unique_name("modes"), SecretString="mode-check")
    data = srv.data_dir
    assert _mode(data) == 0o700
    for f in data.iterdir():
        if f.is_file():
            assert _mode(f) == 0o600, (f, oct(_mode(f)))
    assert _mode(srv.function_dir) == 0o755
    srv.stop()
    data.chmod(0o755)
    (data / "rotary.db").chmod(0o644)
    srv.start()
    try:
        assert _mode(data) == 0o700 and _mode(data / "rotary.db") == 0o600
        assert "Tightened file permissions" in srv.log_tail(200)
    finally:
        srv.stop()


def test_signing_key_readable_by_others_is_refused(tmp_path):
    srv = lib.Server(tmp_path / "sk", name="sk")
    srv.start()
    srv.stop()
    key = srv.data_dir / "signing.key"
    key.chmod(0o644)
    env = dict(os.environ, ROTARY_ROOT_ACCESS_KEY_ID=lib.ACCESS_KEY,
               ROTARY_ROOT_SECRET_ACCESS_KEY=lib.SECRET_KEY)
    r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(srv.data_dir),
                        "--listen", f"127.0.0.1:{lib.free_port()}"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "signing.key" in r.stderr and "chmod 600" in r.stderr, r.stderr


def test_world_writable_function_dir_is_refused(tmp_path):
    fdir = tmp_path / "fns"
    fdir.mkdir()
    fdir.chmod(0o777)
    env = dict(os.environ, ROTARY_ROOT_ACCESS_KEY_ID=lib.ACCESS_KEY,
               ROTARY_ROOT_SECRET_ACCESS_KEY=lib.SECRET_KEY)
    r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "data"),
                        "--function-dir", str(fdir),
                        "--listen", f"127.0.0.1:{lib.free_port()}"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "writable by everyone" in r.stderr, r.stderr


def _serve(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROTARY_ROOT_ACCESS_KEY_ID=lib.ACCESS_KEY,
               ROTARY_ROOT_SECRET_ACCESS_KEY=lib.SECRET_KEY)
    return subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(data_dir),
                           "--listen", f"127.0.0.1:{lib.free_port()}", *extra],
                          env=env, capture_output=True, text=True, timeout=30)


def test_missing_or_wrong_master_key_is_refused_and_nothing_is_created(tmp_path):
    """Issue #12: a data directory full of secrets and no key file must not get a new key."""
    srv = lib.Server(tmp_path / "mk", name="mk")
    srv.start()
    name = unique_name("mk")
    srv.client().create_secret(Name=name, SecretString="master-key-canary")
    srv.stop()
    key = srv.data_dir / "master.key"
    original = key.read_bytes()
    key.unlink()
    r = _serve(srv.data_dir)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "the master key is missing" in r.stderr and str(key) in r.stderr, r.stderr
    assert not key.exists()
    # A different key: refused, and says so.
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    r = _serve(srv.data_dir)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "does not open this data" in r.stderr, r.stderr
    # The original key: everything is there.
    key.write_bytes(original)
    srv.start()
    try:
        assert srv.client().get_secret_value(SecretId=name)["SecretString"] == "master-key-canary"
    finally:
        srv.stop()


def test_master_key_rotation_rekeys_everything_and_the_old_key_stops_working(tmp_path):
    """Issue #12: `rotary master-key rotate` with the server stopped."""
    srv = lib.Server(tmp_path / "rot", name="rot")
    srv.start()
    sm = srv.client()
    sm.create_secret(Name="mk/default", SecretString="default-key-value")
    sm.create_secret(Name="mk/custom", SecretString="custom-key-value", KmsKeyId="alias/team")
    r = lib.raw_call(srv.url, "rotary.CreateUser", json.dumps({"UserName": "mkuser"}))
    assert r.status == 200, r.json
    key = lib.raw_call(srv.url, "rotary.CreateAccessKey",
                       json.dumps({"UserName": "mkuser"})).json["AccessKey"]
    lib.raw_call(srv.url, "rotary.PutUserPolicy", json.dumps({
        "UserName": "mkuser", "PolicyName": "read", "PolicyDocument": json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                    "Action": "secretsmanager:GetSecretValue",
                                                    "Resource": "*"}]})}))
    Rotary(srv).ok("CreateFunction", {"Name": "hook", "Url": "http://127.0.0.1:9/",
                                      "Env": {"TOKEN": "env-canary-value"}})
    srv.stop()
    keyfile = srv.data_dir / "master.key"
    before = keyfile.read_bytes()
    r = subprocess.run([lib.ROTARY_BIN, "master-key", "rotate", "--data-dir", str(srv.data_dir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    old = srv.data_dir / "master.key.old"
    assert old.read_bytes() == before and keyfile.read_bytes() != before
    assert _mode(keyfile) == 0o600
    srv.start()
    try:
        sm = srv.client()
        assert sm.get_secret_value(SecretId="mk/default")["SecretString"] == "default-key-value"
        assert sm.get_secret_value(SecretId="mk/custom")["SecretString"] == "custom-key-value"
        user = srv.client(access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        assert user.get_secret_value(SecretId="mk/custom")["SecretString"] == "custom-key-value"
        assert Rotary(srv).ok("DescribeFunction", {"Name": "hook"})["EnvNames"] == ["TOKEN"]
    finally:
        srv.stop()
    # The old key no longer opens the data.
    new = keyfile.read_bytes()
    keyfile.write_bytes(before)
    r = _serve(srv.data_dir)
    assert r.returncode == 2 and "does not open this data" in r.stderr, r.stderr
    # A crash after re-keying but before the renames: the server says which key opens it.
    (srv.data_dir / "master.key.new").write_bytes(new)
    (srv.data_dir / "master.key.new").chmod(0o600)
    r = _serve(srv.data_dir)
    assert r.returncode == 2 and "master.key.new opens it" in r.stderr, r.stderr
