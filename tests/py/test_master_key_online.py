"""Online master-key rotation on two running nodes over one PostgreSQL store
(docs/operations.md, "Rotating it online").

Each node has its own key file, as on separate machines. The next key is staged on one node,
copied to the other, and loaded by SIGHUP; `rotary master-key rotate --online` re-keys the
store while both nodes serve a steady load of reads, writes, new KMS keys and new access keys
(each sealed under whichever master key the node seals with at that moment). Nothing fails,
everything made before, during and after opens on both nodes, the old key no longer opens
the data, and both nodes restart with the new key alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import rotary_testlib as lib

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})


def ok(url, op, body=None):
    """A Rotary API call (`rotary.<op>`) that must succeed; returns the parsed answer."""
    r = lib.raw_call(url, f"rotary.{op}", json.dumps(body or {}))
    assert r.status == 200, (op, r.status, r.json)
    return r.json


def master_key(*args) -> subprocess.CompletedProcess:
    return subprocess.run([lib.ROTARY_BIN, "master-key", *args], capture_output=True,
                          text=True, timeout=120)


def wait_for_log(node, text, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log of {node.log_path}:\n{node.log_tail()}")


class Load(threading.Thread):
    """Writes and reads through both nodes, and now and then creates a KMS key and an access
    key, until stopped. Every failure is kept."""

    def __init__(self, nodes, secrets, user):
        super().__init__(daemon=True)
        self.nodes, self.secrets, self.user = nodes, secrets, user
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.kms_keys: list[str] = []
        self.access_keys: list[dict] = []
        self.writes = 0

    def run(self):
        clients = [n.client() for n in self.nodes]
        i = 0
        while not self.stop_event.is_set():
            i += 1
            a, b = clients[i % 2], clients[(i + 1) % 2]
            try:
                value = f"load-{i}"
                # Spread over several secrets: a secret keeps at most 100 versions.
                secret = self.secrets[i % len(self.secrets)]
                a.put_secret_value(SecretId=secret, SecretString=value)
                got = b.get_secret_value(SecretId=secret)["SecretString"]
                # The other node may have written after us; it must be one of the load's.
                assert got.startswith("load-"), got
                self.writes += 1
                if i % 10 == 0:
                    url = self.nodes[i % 2].url
                    k = ok(url, "CreateKey", {"Alias": lib.unique_name("online")})
                    self.kms_keys.append(k["KeyMetadata"]["KeyId"])
                if i % 15 == 0:
                    url = self.nodes[(i + 1) % 2].url
                    if len(self.access_keys) >= 2:  # a user has at most two keys
                        old = self.access_keys.pop(0)
                        ok(url, "DeleteAccessKey", {"UserName": self.user,
                                                   "AccessKeyId": old["AccessKeyId"]})
                    self.access_keys.append(
                        ok(url, "CreateAccessKey", {"UserName": self.user})["AccessKey"])
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.01)


def test_online_master_key_rotation_on_two_nodes(tmp_path):
    from pg_server import PgServer

    pg = PgServer(name="mkonline").start()
    nodes = []
    load = None
    try:
        pg.sql("CREATE DATABASE rotary")
        url = f"postgres://postgres:{pg.superuser_password}@127.0.0.1:{pg.port}/rotary"
        keydirs = [tmp_path / "keys0", tmp_path / "keys1"]
        for d in keydirs:
            d.mkdir(mode=0o700)
        keyfiles = [d / "master.key" for d in keydirs]
        for i in range(2):
            nodes.append(lib.Server(tmp_path / f"node{i}", name=f"node{i}", args=[
                "--store", url, "--master-key-file", str(keyfiles[i]), "--node-id", f"node{i}"]))
            if i == 1:  # the first node created the key: the second gets a copy
                shutil.copy(keyfiles[0], keyfiles[1])
                os.chmod(keyfiles[1], 0o600)
            nodes[-1].start()
        old_key = keyfiles[0].read_bytes()

        # Before: a KMS key with a secret under it, a user with a key.
        kms = ok(nodes[0].url, "CreateKey", {"Alias": lib.unique_name("before")})["KeyMetadata"]
        before = lib.unique_name("mk-before")
        a = nodes[0].client()
        a.create_secret(Name=before, SecretString="made-before", KmsKeyId=kms["KeyId"])
        user = lib.unique_name("mkuser")
        ok(nodes[0].url, "CreateUser", {"UserName": user})
        ok(nodes[0].url, "PutUserPolicy", {"UserName": user, "PolicyName": "read",
                                           "PolicyDocument": POLICY})
        loaded = [lib.unique_name("mk-load") for _ in range(20)]
        for name in loaded:
            a.create_secret(Name=name, SecretString="load-0")

        load = Load(nodes, loaded, user)
        load.start()

        key_args = ["--master-key-file", str(keyfiles[0]), "--store", url]
        # Nothing staged: refused, nothing changed.
        r = master_key("rotate", "--online", *key_args)
        assert r.returncode == 2, r
        assert "no next key is staged" in r.stderr, r.stderr

        r = master_key("stage", *key_args)
        assert r.returncode == 0, r.stderr
        staged = keydirs[0] / "master.key.new"
        assert staged.exists() and staged.stat().st_mode & 0o777 == 0o600
        fingerprint = r.stdout.split("fingerprint ")[1].split(")")[0]
        assert len(fingerprint) == 16, r.stdout
        # Staging again keeps the staged key.
        r = master_key("stage", *key_args)
        assert r.returncode == 0 and fingerprint in r.stdout and "kept" in r.stdout, r.stdout

        # The nodes do not hold it yet: refused, naming them.
        r = master_key("rotate", "--online", *key_args)
        assert r.returncode == 2, r
        assert "node0" in r.stderr and "node1" in r.stderr and "Nothing was changed" in r.stderr
        assert keyfiles[0].read_bytes() == old_key

        # node0 takes it on SIGHUP; node1 still lacks it.
        nodes[0].proc.send_signal(signal.SIGHUP)
        wait_for_log(nodes[0], "Holding the next master key")
        deadline = time.monotonic() + 10
        while True:
            r = master_key("rotate", "--online", *key_args)
            if "node0" not in r.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.returncode == 2 and "node1" in r.stderr and "node0" not in r.stderr, r.stderr

        shutil.copy(staged, keydirs[1] / "master.key.new")
        os.chmod(keydirs[1] / "master.key.new", 0o600)
        nodes[1].proc.send_signal(signal.SIGHUP)
        wait_for_log(nodes[1], "Holding the next master key")
        time.sleep(0.5)  # let the load seal a little under the old key with both keys held

        deadline = time.monotonic() + 10
        while True:
            r = master_key("rotate", "--online", "--wait-seconds", "30", *key_args)
            if r.returncode != 2 or "node1" not in r.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        assert "Every node seals with the new key" in r.stdout, r.stdout
        assert keyfiles[0].read_bytes() != old_key
        assert (keydirs[0] / "master.key.old").read_bytes() == old_key
        assert not staged.exists()
        for n in nodes:
            wait_for_log(n, "sealing with it")

        time.sleep(1.0)  # more load under the new key
        load.stop_event.set()
        load.join(timeout=30)
        assert not load.errors, load.errors[:5]
        assert load.writes > 50 and load.kms_keys and load.access_keys, (
            load.writes, load.kms_keys, load.access_keys)

        # Nothing is left under the old key.
        r = master_key("sweep", *key_args)
        assert r.returncode == 0, r.stderr
        assert "Swept: 0 values" in r.stdout, r.stdout

        # node1 replaces its key file with the staged one; both restart on the new key alone.
        os.replace(keydirs[1] / "master.key.new", keyfiles[1])
        os.remove(keydirs[0] / "master.key.old")
        for n in nodes:
            n.stop()
            n.start()
        for n in nodes:
            sm = n.client()
            assert sm.get_secret_value(SecretId=before)["SecretString"] == "made-before"
            for name in loaded:
                assert sm.get_secret_value(SecretId=name)["SecretString"].startswith("load-")
            for k in load.access_keys:
                as_user = lib.make_client(n.url, access_key=k["AccessKeyId"],
                                          secret_key=k["SecretAccessKey"])
                assert as_user.get_secret_value(SecretId=before)["SecretString"] == "made-before"
        # Every KMS key made during the rotation seals and opens on both nodes.
        b = nodes[1].client()
        for kid in load.kms_keys:
            name = lib.unique_name("mk-during")
            a = nodes[0].client()
            a.create_secret(Name=name, SecretString=f"under-{kid}", KmsKeyId=kid)
            assert b.get_secret_value(SecretId=name)["SecretString"] == f"under-{kid}"

        # The old key no longer opens the data: a node started with it is refused.
        stale = tmp_path / "stale"
        stale.mkdir(mode=0o700)
        (stale / "master.key").write_bytes(old_key)
        os.chmod(stale / "master.key", 0o600)
        r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(stale), "--store", url,
                            "--master-key-file", str(stale / "master.key"),
                            "--listen", f"127.0.0.1:{lib.free_port()}"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "ROTARY_ROOT_ACCESS_KEY_ID": lib.ACCESS_KEY,
                                "ROTARY_ROOT_SECRET_ACCESS_KEY": lib.SECRET_KEY})
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "does not open this data" in r.stderr, r.stderr
    finally:
        if load is not None:
            load.stop_event.set()
        for n in nodes:
            n.stop()
        pg.stop()
        pg.destroy()
