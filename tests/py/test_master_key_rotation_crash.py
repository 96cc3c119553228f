"""`rotary master-key rotate` killed at each of its steps: every crash leaves a data directory
that one of the two keys opens, `rotary serve` either serves it or refuses naming the key file
that opens it, and following what it says brings every secret back.

The crashes are real: strace runs the command and sends it SIGKILL on entry to the system
call of the step (creating `master.key.new`, the store's commit, each rename), so the call
does not happen and nothing after it runs. Missing, wrong, right and rotated keys are in
test_sandbox.py (`test_missing_or_wrong_master_key_*`, `test_master_key_rotation_*`)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

import rotary_testlib as lib

SECRETS = {"mk/a": "value-a", "mk/b": "value-b", "mk/team": "value-team"}
RENAMES = "rename,renameat,renameat2"


def serve_refused(data_dir) -> str:
    """Starts `rotary serve`, expects the start-up refusal (exit 2), returns its stderr."""
    env = dict(os.environ, ROTARY_ROOT_ACCESS_KEY_ID=lib.ACCESS_KEY,
               ROTARY_ROOT_SECRET_ACCESS_KEY=lib.SECRET_KEY)
    r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(data_dir),
                        "--listen", f"127.0.0.1:{lib.free_port()}"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    return r.stderr


def key_check(data_dir) -> bytes:
    """The store's key check as the data stands, read from a copy of the database and its WAL
    (SQLite recovers the WAL on open; the copy keeps the data directory as the crash left it)."""
    with tempfile.TemporaryDirectory() as t:
        for f in ("rotary.db", "rotary.db-wal"):
            if (data_dir / f).exists():
                shutil.copy2(data_dir / f, Path(t) / f)
        con = sqlite3.connect(Path(t) / "rotary.db")
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'master-key-check'").fetchone()
        finally:
            con.close()
    return row[0]


def assert_serves_everything(base):
    """Starts a server on base/data: every secret has its value, and it takes a write."""
    srv = lib.Server(base, name="after")
    srv.start()
    try:
        sm = srv.client()
        for name, value in SECRETS.items():
            assert sm.get_secret_value(SecretId=name)["SecretString"] == value, name
        name = lib.unique_name("mk/after")
        sm.create_secret(Name=name, SecretString="written after", KmsKeyId="alias/team")
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "written after"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A stopped server's data directory holding secrets under two KMS keys."""
    base = tmp_path_factory.mktemp("mk-prepared")
    srv = lib.Server(base, name="prepare")
    srv.start()
    sm = srv.client()
    for name, value in SECRETS.items():
        kw = {"KmsKeyId": "alias/team"} if name == "mk/team" else {}
        sm.create_secret(Name=name, SecretString=value, **kw)
    srv.stop()
    return srv.data_dir


# (case, strace filter, expected state): the syscall the command is killed on entering.
CASES = [
    # Creating master.key.new: nothing written yet.
    ("before-new-key", ["-P", "{d}/master.key.new", "-e", "trace=openat",
                        "-e", "inject=openat:signal=KILL"], "old"),
    # master.key.new written, the store's transaction not yet written.
    ("before-commit", ["-P", "{d}/rotary.db-wal", "-e", "trace=pwrite64",
                       "-e", "inject=pwrite64:signal=KILL"], "old"),
    # The first sync of the WAL. On a WAL that already holds frames, that is the commit's
    # sync: the transaction is written, committed as far as the data is concerned (a process
    # crash loses nothing the kernel has). On a fresh WAL SQLite first syncs its header, before
    # any frame: the transaction never happened. Which one it was is read from the store, and
    # either way one key opens the data and the server says which.
    ("at-commit-sync", ["-P", "{d}/rotary.db-wal", "-e", "trace=fsync,fdatasync",
                        "-e", "inject=fsync,fdatasync:signal=KILL"], "either"),
    # The data re-keyed, master.key not yet renamed to master.key.old.
    ("before-first-rename", ["-e", f"trace={RENAMES}",
                             "-e", f"inject={RENAMES}:signal=KILL:when=1"], "new"),
    # master.key renamed to master.key.old, master.key.new not yet renamed to master.key.
    ("between-renames", ["-e", f"trace={RENAMES}",
                         "-e", f"inject={RENAMES}:signal=KILL:when=2"], "new-missing"),
]


@pytest.mark.parametrize("case,filt,state", CASES, ids=[c[0] for c in CASES])
def test_rotation_killed_at_each_step_leaves_data_one_key_opens(prepared, tmp_path, case, filt,
                                                                 state):
    base = tmp_path / case
    base.mkdir()
    data = base / "data"
    shutil.copytree(prepared, data)
    key, new, old = data / "master.key", data / "master.key.new", data / "master.key.old"
    original = key.read_bytes()

    r = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", *[a.format(d=data) for a in filt],
         lib.ROTARY_BIN, "master-key", "rotate", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60)
    # strace exits as its child did: killed by the injected SIGKILL.
    assert r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), (r.returncode, r.stderr)
    assert "Rotated the master key" not in r.stdout
    if state == "either":
        state = "old" if key_check(data) == key_check(prepared) else "new"

    if state == "old":
        # The data is still on the old key, which is still master.key: the server starts.
        assert key.read_bytes() == original and not old.exists()
        # Killed before or after the new key was written (a leftover master.key.new does
        # not open the data, and the server does not use it). A WAL left by the stopped
        # server may be synced while the store opens, before the new key is written: the
        # first WAL sync then comes before master.key.new.
        if case == "before-new-key":
            assert not new.exists()
        elif case == "before-commit":
            assert new.exists()
        assert_serves_everything(base)
        # A later rotation replaces the leftover master.key.new and completes.
        r = subprocess.run([lib.ROTARY_BIN, "master-key", "rotate", "--data-dir", str(data)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert old.read_bytes() == original and key.read_bytes() != original
        assert not new.exists()
        assert_serves_everything(base)
        return

    # The data is on the new key, still in master.key.new: refused, naming it.
    assert new.exists()
    err = serve_refused(data)
    if state == "new":
        assert key.read_bytes() == original
        assert f"the master key in {key} does not open this data" in err, err
    else:
        assert not key.exists() and old.read_bytes() == original
        assert f"the master key is missing: {key} does not exist" in err, err
    assert f"{new} opens it: a master-key rotation was interrupted" in err, err
    assert f"rename {new} to {key}" in err, err
    # Nothing was created or changed by the refused start.
    assert new.exists() and (key.exists() == (state == "new"))
    # As it says: move master.key aside, put master.key.new in its place.
    if key.exists():
        key.rename(data / "master.key.aside")
    new.rename(key)
    assert_serves_everything(base)
    # The old key no longer opens the data.
    key.rename(data / "master.key.rotated")
    key.write_bytes(original)
    key.chmod(0o600)
    assert "does not open this data" in serve_refused(data)
