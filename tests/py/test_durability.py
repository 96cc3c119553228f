"""Crash durability and plaintext-at-rest checks (DESIGN.md 'Decisions').

- A write is acknowledged only after it is durable: SIGKILL loses no acknowledged write.
- A crash leaves no half-applied state.
- Plaintext secret values never appear in the store files (incl. SQLite -wal/-shm) or logs.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import threading
import time
import uuid

import pytest

from botocore.exceptions import ClientError

from rotary_testlib import SECRET_KEY, list_all_versions, make_client


def needles_for(value) -> list[bytes]:
    raw = value if isinstance(value, bytes) else value.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


def scan_for(paths, needles):
    """Return [(path, needle)] for every needle found in any file's raw bytes."""
    hits = []
    for p in paths:
        try:
            data = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        for n in needles:
            if n in data:
                hits.append((str(p), n[:40]))
    return hits


def all_files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_master_key_mode_and_sqlite_store(server):
    mk = server.data_dir / "master.key"
    assert mk.is_file(), sorted(os.listdir(server.data_dir))
    mode = stat.S_IMODE(mk.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert mk.stat().st_size > 0
    sqlite = [p for p in all_files(server.data_dir)
              if p.read_bytes()[:16] == b"SQLite format 3\x00"]
    assert sqlite, f"no SQLite database in {sorted(os.listdir(server.data_dir))}"


TRACE = pytest.mark.parametrize("own_server", [{"ROTARY_LOG": "trace"}], indirect=True,
                                ids=["log=trace"])


@TRACE
def test_acknowledged_writes_survive_sigkill(own_server):
    sm = own_server.client()
    canary = uuid.uuid4().hex
    current, previous = {}, {}
    for i in range(50):
        name = f"dur-{i:02d}-{secrets.token_hex(4)}"
        if i % 5 == 0:
            val = b"\x00\xffBIN" + f"canary-{canary}-{i}-".encode() + secrets.token_bytes(16)
            sm.create_secret(Name=name, SecretBinary=val)
        else:
            val = f"canary-{canary}-{i}-{secrets.token_hex(12)}"
            sm.create_secret(Name=name, SecretString=val, Description=f"secret number {i}")
        current[name] = val
    for name in list(current)[:10]:
        new = f"canary-{canary}-v2-{secrets.token_hex(12)}"
        sm.put_secret_value(SecretId=name, SecretString=new)
        previous[name], current[name] = current[name], new

    own_server.kill()  # SIGKILL right after the last acknowledgement

    files = all_files(own_server.data_dir)
    needles = [canary.encode()] + [n for v in list(current.values()) + list(previous.values())
                                   for n in needles_for(v)]
    hits = scan_for(files, needles)
    assert hits == [], f"plaintext found at rest after crash: {hits[:5]}"

    own_server.start()
    sm = own_server.client()
    for name, val in current.items():
        g = sm.get_secret_value(SecretId=name)
        got = g.get("SecretBinary") if isinstance(val, bytes) else g.get("SecretString")
        assert got == val, name
    for name, val in previous.items():
        g = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
        assert g.get("SecretBinary", g.get("SecretString")) == val, name
        st = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
        assert sorted(sum(st.values(), [])) == ["AWSCURRENT", "AWSPREVIOUS"]
    listed = set()
    token = None
    while True:
        kw = {"MaxResults": 100, **({"NextToken": token} if token else {})}
        r = sm.list_secrets(**kw)
        listed.update(e["Name"] for e in r["SecretList"])
        token = r.get("NextToken")
        if not token:
            break
    assert set(current) <= listed

    # after the restart and all those reads: still nothing in files (incl. -wal/-shm) or log
    files = all_files(own_server.data_dir)
    hits = scan_for(files, needles)
    assert hits == [], f"plaintext found at rest after restart: {hits[:5]}"
    own_server.stop()
    log_hits = scan_for([own_server.log_path], needles + [SECRET_KEY.encode()])
    assert log_hits == [], f"plaintext found in server log: {log_hits[:5]}"
    hits = scan_for(all_files(own_server.data_dir), needles + [SECRET_KEY.encode()])
    assert hits == [], f"plaintext found at rest after shutdown: {hits[:5]}"


@TRACE
def test_inflight_writes_during_sigkill(own_server):
    """Kill the server while 4 writers are mid-flight; every acked write survives and every
    unacked one is either absent or complete. Labels on a hot secret stay consistent."""
    url = own_server.url
    boot = own_server.client()
    run = secrets.token_hex(8)  # appears in every value, never in a name
    hot = f"hot-{secrets.token_hex(4)}"
    hv0 = f"hv{run}-0"
    boot.create_secret(Name=hot, SecretString=hv0)
    lock = threading.Lock()
    acked, attempted = {}, {}
    hot_acked, hot_attempted = [hv0], []
    stop = threading.Event()

    def creator(k):
        c = make_client(url)
        i = 0
        while not stop.is_set():
            name = f"fl-{k}-{i}-{secrets.token_hex(3)}"
            val = f"if{run}-{k}-{i}-{secrets.token_hex(8)}"
            with lock:
                attempted[name] = val
            try:
                c.create_secret(Name=name, SecretString=val)
            except Exception:
                return
            with lock:
                acked[name] = val
            i += 1

    def putter():
        c = make_client(url)
        i = 1
        while not stop.is_set() and i <= 60:
            val = f"hv{run}-{i}"
            with lock:
                hot_attempted.append(val)
            try:
                c.put_secret_value(SecretId=hot, SecretString=val)
            except Exception:
                return
            with lock:
                hot_acked.append(val)
            i += 1

    threads = [threading.Thread(target=creator, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=putter))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 60 and len(hot_acked) >= 15:
                break
        time.sleep(0.01)
    own_server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 20, f"only {len(acked)} writes acknowledged before the kill"

    own_server.start()
    sm = own_server.client()
    for name, val in acked.items():
        assert sm.get_secret_value(SecretId=name)["SecretString"] == val, name
    for name in set(attempted) - set(acked):
        try:
            g = sm.get_secret_value(SecretId=name)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException", (name, e.response)
            continue
        assert g["SecretString"] == attempted[name]
        assert g["VersionStages"] == ["AWSCURRENT"]

    cur = sm.get_secret_value(SecretId=hot)["SecretString"]
    last_acked = hot_acked[-1]
    allowed = [last_acked] + hot_attempted[hot_attempted.index(last_acked) + 1:] \
        if last_acked in hot_attempted else [last_acked] + hot_attempted
    assert cur in allowed, (cur, last_acked)
    st = sm.describe_secret(SecretId=hot)["VersionIdsToStages"]
    labels = sorted(sum(st.values(), []))
    assert labels == (["AWSCURRENT"] if cur == hv0 else ["AWSCURRENT", "AWSPREVIOUS"]), st
    values = {}
    for v in list_all_versions(sm, hot):
        values[sm.get_secret_value(SecretId=hot, VersionId=v["VersionId"])["SecretString"]] = v
    missing = [v for v in hot_acked if v not in values]
    assert missing == [], f"acknowledged versions lost: {missing}"

    own_server.stop()
    hits = scan_for(all_files(own_server.data_dir) + [own_server.log_path], [run.encode()])
    assert hits == [], f"plaintext found at rest or in the log: {hits[:5]}"


def test_restart_preserves_metadata(own_server):
    sm = own_server.client()
    name = f"meta-{secrets.token_hex(4)}"
    arn = sm.create_secret(Name=name, SecretString="v", Description="desc",
                           Tags=[{"Key": "a", "Value": "1"}])["ARN"]
    sm.put_secret_value(SecretId=name, SecretString="w", VersionStages=["CUSTOM"])
    sm.put_resource_policy(SecretId=name, ResourcePolicy='{"Version":"2012-10-17","Statement":'
                           '[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:'
                           'root"},"Action":"secretsmanager:*","Resource":"*"}]}')
    gone = f"gone-{secrets.token_hex(4)}"
    sm.create_secret(Name=gone, SecretString="x")
    sm.delete_secret(SecretId=gone, RecoveryWindowInDays=7)
    before = {k: v for k, v in sm.describe_secret(SecretId=name).items()
              if k != "ResponseMetadata"}
    own_server.restart()
    sm = own_server.client()
    after = {k: v for k, v in sm.describe_secret(SecretId=name).items()
             if k != "ResponseMetadata"}
    assert after == before
    assert after["ARN"] == arn
    assert sm.get_resource_policy(SecretId=name)["ResourcePolicy"]
    assert "DeletedDate" in sm.describe_secret(SecretId=gone)
    sm.restore_secret(SecretId=gone)
    assert sm.get_secret_value(SecretId=gone)["SecretString"] == "x"
