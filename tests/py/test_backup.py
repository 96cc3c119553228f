"""`rotary backup` / `rotary restore`: an online snapshot taken while
the server takes writes, restored into a new data directory that a second server serves with
the original master key."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
import uuid

import pytest

import rotary_testlib as lib

N_SECRETS = 50


def rotary(*args, timeout=120):
    return subprocess.run(
        [lib.ROTARY_BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def versions(sm, name) -> dict:
    """{version_id: sorted stages} of every version, deprecated ones included."""
    out, kw = {}, {}
    while True:
        page = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True, **kw)
        for v in page["Versions"]:
            out[v["VersionId"]] = sorted(v.get("VersionStages", []))
        if not page.get("NextToken"):
            return out
        kw = {"NextToken": page["NextToken"]}


def value_of(sm, name, vid):
    r = sm.get_secret_value(SecretId=name, VersionId=vid)
    return r.get("SecretString", r.get("SecretBinary"))


class Writer(threading.Thread):
    """PutSecretValue on the secrets round-robin until stopped; records every acknowledged
    write as (secret, version id, value, monotonic time of the acknowledgement)."""

    def __init__(self, url, names):
        super().__init__(daemon=True)
        self.sm = lib.make_client(url)
        self.names = names
        self.stop_event = threading.Event()
        self.acked: list[tuple[str, str, str, float]] = []
        self.started_puts: list[tuple[str, str, str]] = []
        self.error: Exception | None = None

    def run(self):
        i = 0
        try:
            while not self.stop_event.is_set():
                name = self.names[i % len(self.names)]
                vid = lib.new_token()
                value = f"w-{i}-{uuid.uuid4().hex}"
                self.started_puts.append((name, vid, value))
                self.sm.put_secret_value(SecretId=name, ClientRequestToken=vid, SecretString=value)
                self.acked.append((name, vid, value, time.monotonic()))
                i += 1
        except Exception as e:  # surfaced by the test
            self.error = e


@pytest.fixture
def first(tmp_path):
    srv = lib.Server(tmp_path / "first", name="first")
    srv.start()
    yield srv
    srv.stop()


def test_backup_under_writes_then_restore_serves_everything(first, tmp_path):
    sm = first.client()
    prefix = f"bk-{uuid.uuid4().hex[:8]}"
    canary = f"CANARY-{uuid.uuid4().hex}-do-not-leak"
    names = []
    before = {}  # name -> {"arn", "versions": {vid: stages}, "values": {vid: value}}
    for i in range(N_SECRETS):
        name = f"{prefix}/s{i:02d}"
        names.append(name)
        first_value = canary if i == 7 else f"v1-{i}-{uuid.uuid4().hex}"
        kw = {"SecretBinary": f"bin-{i}".encode()} if i % 10 == 3 else {
            "SecretString": first_value}
        sm.create_secret(Name=name, ClientRequestToken=lib.new_token(), **kw)
        sm.put_secret_value(SecretId=name, ClientRequestToken=lib.new_token(),
                            SecretString=f"v2-{i}-{uuid.uuid4().hex}")
        # A version that only custom labels point at.
        sm.put_secret_value(SecretId=name, ClientRequestToken=lib.new_token(),
                            SecretString=f"v3-{i}-{uuid.uuid4().hex}",
                            VersionStages=[f"custom-{i}", "green"])
    for name in names:
        vs = versions(sm, name)
        before[name] = {
            "arn": sm.describe_secret(SecretId=name)["ARN"],
            "versions": vs,
            "values": {vid: value_of(sm, name, vid) for vid in vs},
        }
        assert len(vs) == 3, vs

    # A secret scheduled for deletion is in the snapshot too, still scheduled.
    doomed = f"{prefix}/doomed"
    sm.create_secret(Name=doomed, SecretString="doomed-value")
    sm.delete_secret(SecretId=doomed, RecoveryWindowInDays=7)
    doomed_arn = sm.describe_secret(SecretId=doomed)["ARN"]

    writer = Writer(first.url, names)
    writer.start()
    deadline = time.monotonic() + 30
    while len(writer.acked) < 20 and time.monotonic() < deadline and writer.error is None:
        time.sleep(0.02)
    assert writer.error is None, writer.error
    assert len(writer.acked) >= 20, "the writer made no progress"

    out = tmp_path / "snap.rotarybackup"
    backup_start = time.monotonic()
    acked_before_start = len(writer.acked)
    r = rotary("backup", "--data-dir", first.data_dir, "--out", out)
    backup_end = time.monotonic()
    # Let the writes go on a little after the snapshot, then stop them.
    n_at_end = len(writer.acked)
    while len(writer.acked) < n_at_end + 10 and time.monotonic() < backup_end + 10:
        time.sleep(0.02)
    writer.stop_event.set()
    writer.join(timeout=30)
    assert writer.error is None, writer.error
    assert r.returncode == 0, r.stderr
    assert "ciphertext" in r.stdout and "NOT in the backup" in r.stdout, r.stdout
    assert str(first.data_dir / "master.key") in r.stdout, r.stdout
    assert mode(out) == 0o600
    assert not list(tmp_path.glob("snap.rotarybackup.tmp*")), "temporary file left behind"
    data = out.read_bytes()
    assert data.startswith(b"SQLite format 3\x00")

    # Only ciphertext: no value in clear, above all the canary.
    assert canary.encode() not in data
    for name in names:
        for v in before[name]["values"].values():
            assert (v if isinstance(v, bytes) else v.encode()) not in data, name
    for _, _, v, _ in writer.acked:
        assert v.encode() not in data

    # Never overwrites.
    r = rotary("backup", "--data-dir", first.data_dir, "--out", out)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "already exists" in r.stderr
    assert out.read_bytes() == data

    # --store sqlite://PATH names the database instead of the data dir's default.
    out2 = tmp_path / "snap2.rotarybackup"
    r = rotary("backup", "--data-dir", tmp_path / "nowhere", "--store",
               f"sqlite://{first.data_dir / 'rotary.db'}", "--out", out2)
    assert r.returncode == 0, r.stderr
    assert mode(out2) == 0o600
    first.stop()

    # Restore into a new directory.
    second_base = tmp_path / "second"
    second_base.mkdir()
    new_dir = second_base / "data"
    r = rotary("restore", "--from", out, "--data-dir", new_dir)
    assert r.returncode == 0, r.stderr
    assert str(new_dir / "master.key") in r.stdout and "--master-key-file" in r.stdout, r.stdout
    assert mode(new_dir) == 0o700
    assert mode(new_dir / "rotary.db") == 0o600

    # Refusals: a target holding a database, a non-empty target, files that are no Rotary db.
    r = rotary("restore", "--from", out, "--data-dir", new_dir)
    assert r.returncode == 2 and "not empty" in r.stderr, (r.returncode, r.stderr)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("hello")
    r = rotary("restore", "--from", out, "--data-dir", busy)
    assert r.returncode == 2 and "not empty" in r.stderr, (r.returncode, r.stderr)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
        c.execute("INSERT INTO t VALUES (1)")
    c.close()
    for bad in (junk, other, tmp_path / "missing.db"):
        target = tmp_path / f"from-{bad.name}"
        r = rotary("restore", "--from", bad, "--data-dir", target)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert not target.exists(), bad
    assert "not a Rotary database" in rotary(
        "restore", "--from", other, "--data-dir", tmp_path / "x").stderr

    # With the master key copied, a second server serves the snapshot.
    shutil.copy2(first.data_dir / "master.key", new_dir / "master.key")
    os.chmod(new_dir / "master.key", 0o600)
    second = lib.Server(second_base, name="second")
    second.start()
    try:
        sm2 = second.client()
        acked = {vid: (name, value, t) for name, vid, value, t in writer.acked}
        attempted = {vid: (name, value) for name, vid, value in writer.started_puts}
        for name in names:
            b = before[name]
            assert sm2.describe_secret(SecretId=name)["ARN"] == b["arn"]
            vs = versions(sm2, name)
            # Every version present before the backup started, with its value.
            for vid, stages in b["versions"].items():
                assert vid in vs, (name, vid)
                assert value_of(sm2, name, vid) == b["values"][vid], (name, vid)
                custom = [s for s in stages if s not in ("AWSCURRENT", "AWSPREVIOUS")]
                assert [s for s in vs[vid] if s not in ("AWSCURRENT", "AWSPREVIOUS")] == custom
            current = [vid for vid, st in vs.items() if "AWSCURRENT" in st]
            assert len(current) == 1, (name, vs)
            previous = [vid for vid, st in vs.items() if "AWSPREVIOUS" in st]
            assert len(previous) <= 1, (name, vs)
            # The writer's versions: each one acknowledged before the backup started is
            # there, anything else there is one the writer sent, and AWSCURRENT is the newest.
            mine = [vid for vid in vs if vid not in b["versions"]]
            for vid in mine:
                assert vid in attempted and attempted[vid][0] == name, (name, vid)
                assert value_of(sm2, name, vid) == attempted[vid][1]
            for vid, (n, value, t) in acked.items():
                if n == name and t < backup_start:
                    assert vid in vs, ("acknowledged write missing", name, vid)
            order = [vid for n, vid, _ in writer.started_puts if n == name and vid in vs]
            assert order == [vid for n, vid, _ in writer.started_puts
                             if n == name][:len(order)], "snapshot is not a prefix of writes"
            expected_current = order[-1] if order else next(
                vid for vid, st in b["versions"].items() if "AWSCURRENT" in st)
            assert current == [expected_current], (name, vs)
        assert acked_before_start >= 20
        d = sm2.describe_secret(SecretId=doomed)
        assert d["ARN"] == doomed_arn and "DeletedDate" in d
        sm2.restore_secret(SecretId=doomed)
        assert sm2.get_secret_value(SecretId=doomed)["SecretString"] == "doomed-value"
        # The restored server takes writes.
        vid = lib.new_token()
        sm2.put_secret_value(SecretId=names[0], ClientRequestToken=vid, SecretString="after")
        got = sm2.get_secret_value(SecretId=names[0])
        assert (got["VersionId"], got["SecretString"]) == (vid, "after")
    finally:
        second.stop()
