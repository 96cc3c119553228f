"""SIGKILL at random moments, 20 times, under a mixed write load (creates, puts to shared
secrets from several writers at once, tags, deletes). After every restart: every
acknowledged write is there, nothing half-applied is visible, and every secret has exactly
one AWSCURRENT. Writes are group-committed, so this also checks that no write is
acknowledged before the commit that holds it."""

from __future__ import annotations

import random
import secrets
import threading
import time

from botocore.exceptions import ClientError

from rotary_testlib import list_all_versions, make_client

ROUNDS = 20
HOT = 8  # secrets every putter writes to, so that writes to one secret queue and batch
# Puts per putter per round: well under the versions a secret keeps, so no acknowledged
# version of the round is pruned as deprecated before it is checked.
PUTS = 40


def _load(clients, run, stop, acked, lock):
    """Writers: two creators, four putters over the hot secrets, one tagger. Clients are
    made beforehand (making a boto3 client takes longer than a round)."""

    def creator(k):
        c = clients[k]
        i = 0
        while not stop.is_set():
            name = f"c-{run}-{k}-{i}"
            val = f"{run}-create-{k}-{i}"
            try:
                c.create_secret(Name=name, SecretString=val)
            except Exception:
                return
            with lock:
                acked["created"][name] = val
            i += 1

    def putter(k):
        c = clients[2 + k]
        i = 0
        while not stop.is_set() and i < PUTS:
            name = f"hot-{(i + k) % HOT}"
            val = f"{run}-put-{k}-{i}"
            try:
                vid = c.put_secret_value(SecretId=name, SecretString=val)["VersionId"]
            except Exception:
                return
            with lock:
                acked["puts"].append((name, vid, val))
            i += 1

    def tagger():
        c = clients[6]
        i = 0
        while not stop.is_set():
            name = f"hot-{i % HOT}"
            try:
                c.tag_resource(SecretId=name, Tags=[{"Key": "round", "Value": f"{run}-{i}"}])
            except Exception:
                return
            i += 1

    threads = [threading.Thread(target=creator, args=(k,)) for k in range(2)]
    threads += [threading.Thread(target=putter, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=tagger))
    for t in threads:
        t.start()
    return threads


def test_sigkill_twenty_times_under_mixed_writes(own_server):
    rng = random.Random(secrets.randbits(32))
    sm = own_server.client()
    for i in range(HOT):
        sm.create_secret(Name=f"hot-{i}", SecretString="initial")
    all_created: dict[str, str] = {}
    all_puts: list[tuple[str, str, str]] = []
    for round_no in range(ROUNDS):
        run = secrets.token_hex(4)
        acked = {"created": {}, "puts": []}
        lock = threading.Lock()
        stop = threading.Event()
        clients = [make_client(own_server.url) for _ in range(7)]
        threads = _load(clients, run, stop, acked, lock)
        # Kill at a random moment once the load is under way.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if acked["created"] and acked["puts"]:
                    break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
        own_server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        all_created.update(acked["created"])
        all_puts.extend(acked["puts"])

        own_server.start()
        sm = own_server.client()
        for name, val in acked["created"].items():
            assert sm.get_secret_value(SecretId=name)["SecretString"] == val, (round_no, name)
        for i in range(HOT):
            name = f"hot-{i}"
            versions = list_all_versions(sm, name)
            current = [v for v in versions if "AWSCURRENT" in v.get("VersionStages", [])]
            assert len(current) == 1, (round_no, name, versions)
            previous = [v for v in versions if "AWSPREVIOUS" in v.get("VersionStages", [])]
            assert len(previous) <= 1, (round_no, name, versions)
        # Every acknowledged version of this round is there with its value (older rounds'
        # versions may have been pruned as deprecated, as AWS does).
        for name, vid, val in acked["puts"]:
            try:
                got = sm.get_secret_value(SecretId=name, VersionId=vid)["SecretString"]
            except ClientError as e:
                raise AssertionError((round_no, name, vid, e.response["Error"])) from e
            assert got == val, (round_no, name, vid)
    assert len(all_created) > ROUNDS, "the load acknowledged too few creates to mean much"
    assert len(all_puts) > ROUNDS, "the load acknowledged too few puts to mean much"
