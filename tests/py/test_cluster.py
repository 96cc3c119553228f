"""Several `rotary serve` nodes over one PostgreSQL database (docs/scaling.md).

A throwaway PostgreSQL (pg_server.PgServer) and three nodes sharing it and one master key
file. What must hold:
- a write acknowledged by one node is what the others read next (no stale cached copy),
  including KMS keys, users and access keys, and rotation functions created on one node;
- 1,000 rotations falling due at once (the test clock moved on one node, seen by all) each
  run exactly once across the nodes while one node is SIGKILLed in the middle;
- a node killed inside a rotation step has its rotation finished by another node, with the
  same ClientRequestToken, once its claim's lease runs out;
- the database restarted under load: requests fail while it is down, succeed after it is
  back, and nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

import rotary_testlib as lib
from pg_server import PgServer

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import GENERIC, Rotary, current_of, python_command, wait_for  # noqa: E402

LEASE_SECONDS = 3
N_NODES = 3
N_ROTATIONS = 1000
THREADS = 16


def _client(url):
    return lib.make_client(url, pool=THREADS * 2, read_timeout=60)


class RoundRobin:
    """A TCP load balancer in front of the nodes: each new connection goes to the next live
    node. The nodes' --public-url points here, so rotation functions' calls are spread over
    the nodes like behind a real load balancer."""

    def __init__(self):
        self.port = lib.free_port()
        self.backends: list[int] = []
        self.hits: dict[int, int] = {}
        self._next = 0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = None
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                upstream.settimeout(None)
                self.hits[port] = self.hits.get(port, 0) + 1
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def close(self):
        self._sock.close()


class Cluster:
    def __init__(self, base: Path):
        self.base = base
        self.pg = PgServer(name="cluster").start()
        self.pg.sql("CREATE DATABASE rotary")
        self.url = (f"postgres://postgres:{self.pg.superuser_password}@127.0.0.1:"
                    f"{self.pg.port}/rotary")
        shared = base / "shared"
        shared.mkdir(mode=0o700)
        self.master_key = shared / "master.key"
        self.lb = RoundRobin()
        self.nodes: list[lib.Server] = []
        for i in range(N_NODES):
            self.nodes.append(lib.Server(base / f"node{i}", name=f"node{i}", args=[
                "--store", self.url,
                "--master-key-file", str(self.master_key),
                "--node-id", f"node{i}",
                "--rotation-claim-lease-seconds", str(LEASE_SECONDS),
                "--test-clock",
                "--public-url", self.lb.url,
            ]))
        # The first node creates the master key; the others open the same file.
        self.nodes[0].start()
        for n in self.nodes[1:]:
            n.start()
        self.lb.backends = [n.port for n in self.nodes]
        for n in self.nodes:
            Rotary(n)  # installs the function fixtures in each node's function dir

    def alive(self) -> list[lib.Server]:
        return [n for n in self.nodes if n.alive()]

    def logs(self) -> str:
        return "\n".join(f"--- {n.log_path.name}\n{n.log_tail(15)}" for n in self.nodes)

    def close(self):
        for n in self.nodes:
            n.stop()
        self.pg.stop()
        self.pg.destroy()
        self.lb.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


def _restart_dead(cluster):
    for n in cluster.nodes:
        if not n.alive():
            n.start()
    cluster.lb.backends = [n.port for n in cluster.nodes]


def _settled_stages(client, name: str, expected: dict, timeout: float = 15.0) -> dict:
    """The secret's labels once they equal `expected`, or as they are at the timeout. The
    rotation history records success just before the completion (AWSPENDING's removal)
    commits, by design (a node dying between the two leaves a rotation to resume, never a
    finished one recorded as in progress), so a reader that saw the record may briefly see
    AWSPENDING still on the new version."""
    deadline = time.monotonic() + timeout
    while True:
        st = {k: sorted(v) for k, v in client.describe_secret(SecretId=name)[
            "VersionIdsToStages"].items()}
        if st == expected or time.monotonic() >= deadline:
            return st
        time.sleep(0.05)


def test_rotation_functions_calls_are_accepted_by_every_node(cluster):
    """A step's temporary credentials are issued by the node running the rotation; the
    function's calls go through the load balancer to any node, which must accept them."""
    markers = lib.function_writable_dir("cluster-lb")
    rot = Rotary(cluster.nodes[0])
    fn = f"cl-lb-{uuid.uuid4().hex[:8]}"
    arn = rot.create_function(fn, Command=python_command(), TimeoutSeconds=60,
                              Env={"MARKER_DIR": str(markers)})
    sm = _client(cluster.nodes[0].url)
    cluster.lb.hits.clear()
    for i in range(3):
        name = lib.unique_name(f"cl-lb{i}")
        orig = sm.create_secret(Name=name, SecretString=json.dumps(
            {"username": "app", "password": "orig"}))["VersionId"]
        token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                                 RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        rec = rot.wait_outcome(name, token, timeout=60)
        assert rec["Outcome"] == "Succeeded", rec
        expected = {orig: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
        st = _settled_stages(sm, name, expected)
        assert st == expected, st
    # The functions' calls reached more than one node.
    assert len([p for p, n in cluster.lb.hits.items() if n > 0]) >= 2, cluster.lb.hits


def test_writes_on_one_node_are_read_on_the_others(cluster):
    a, b, c = (_client(n.url) for n in cluster.nodes)
    name = lib.unique_name("cl-rw")
    a.create_secret(Name=name, SecretString="v0")
    # Reads on B and C first, so that both hold the secret in their read caches.
    for sm in (b, c):
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "v0"
    clients = [a, b, c]
    for i in range(1, 31):
        writer = clients[i % 3]
        writer.put_secret_value(SecretId=name, SecretString=f"v{i}")
        for j, reader in enumerate(clients):
            got = reader.get_secret_value(SecretId=name)["SecretString"]
            assert got == f"v{i}", f"node{j} read {got!r} right after node{i % 3} wrote v{i}"
    c.update_secret(SecretId=name, Description="set on node2")
    assert a.describe_secret(SecretId=name)["Description"] == "set on node2"
    b.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    for sm in (a, c):
        with pytest.raises(ClientError) as e:
            sm.get_secret_value(SecretId=name)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_kms_key_user_and_function_made_on_one_node_work_on_the_others(cluster):
    a, b = _client(cluster.nodes[0].url), _client(cluster.nodes[1].url)
    # A named KMS key is created on first use by node0; node1 must open values sealed by it.
    name = lib.unique_name("cl-kms")
    a.create_secret(Name=name, SecretString="under-a-named-key",
                    KmsKeyId=f"alias/{lib.unique_name('k')}")
    assert b.get_secret_value(SecretId=name)["SecretString"] == "under-a-named-key"

    # A user and an access key created through node0 sign requests that node2 accepts.
    user = lib.unique_name("cl-user")
    def iam(op, body):
        r = lib.raw_call(cluster.nodes[0].url, f"rotary.{op}", json.dumps(body))
        assert r.status == 200, (op, r.status, r.body[:300])
        return r.json

    iam("CreateUser", {"UserName": user})
    iam("PutUserPolicy", {"UserName": user, "PolicyName": "read", "PolicyDocument": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                       "Resource": "*"}]})})
    key = iam("CreateAccessKey", {"UserName": user})["AccessKey"]
    as_user = lib.make_client(cluster.nodes[2].url, access_key=key["AccessKeyId"],
                              secret_key=key["SecretAccessKey"])
    wait_for(lambda: _works(lambda: as_user.get_secret_value(SecretId=name)), 10,
             "node2 to accept the key created on node0", cluster.logs)
    with pytest.raises(ClientError) as e:
        as_user.delete_secret(SecretId=name)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"

    # A function registered on node1 is known to node0 (RotateSecret there checks it).
    fn = f"cl-fn-{uuid.uuid4().hex[:8]}"
    arn = Rotary(cluster.nodes[1]).create_function(fn, Command="true")
    r = Rotary(cluster.nodes[0]).ok("DescribeFunction", {"Name": fn})
    assert r.get("FunctionArn", arn) == arn


def _works(call) -> bool:
    try:
        call()
        return True
    except ClientError:
        return False


def test_thousand_due_rotations_run_once_across_nodes_with_one_killed(cluster):
    prefix = lib.unique_name("cl-scale")
    names = [f"{prefix}-{i:04d}" for i in range(N_ROTATIONS)]
    clients = [_client(n.url) for n in cluster.nodes]

    def setup(i_name):
        i, name = i_name
        c = clients[i % N_NODES]  # configured through every node
        vid = c.create_secret(Name=name, SecretString='{"username":"app","password":"p0"}')[
            "VersionId"]
        c.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC,
                        RotationRules={"AutomaticallyAfterDays": 1}, RotateImmediately=False)
        return name, vid

    with ThreadPoolExecutor(THREADS) as pool:
        original = dict(pool.map(setup, enumerate(names)))

    def listed():
        out, token = [], None
        while True:
            kw = {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": 100}
            if token:
                kw["NextToken"] = token
            r = _client(cluster.alive()[0].url).list_secrets(**kw)
            out.extend(r["SecretList"])
            token = r.get("NextToken")
            if not token:
                return out

    def stages(e):
        return {k: sorted(v) for k, v in e.get("SecretVersionsToStages", {}).items()}

    def settled():
        entries = listed()
        return len(entries) == N_ROTATIONS and all(
            stages(e) == {original[e["Name"]]: ["AWSCURRENT"]} for e in entries)

    wait_for(settled, 180, "the configuration test rotations", cluster.logs, interval=0.5)

    # Time moves on node1 only; the others learn it through the store.
    Rotary(cluster.nodes[1]).advance(2 * 86400)

    def rotated_count():
        done = 0
        for e in listed():
            st = stages(e)
            cur = current_of(st)
            if cur and cur != original[e["Name"]] and not any(
                    "AWSPENDING" in s for s in st.values()):
                done += 1
        return done

    # Kill node2 once the rotations are under way.
    wait_for(lambda: rotated_count() >= N_ROTATIONS // 10, 120,
             "the first rotations", cluster.logs, interval=0.2)
    cluster.nodes[2].kill()
    wait_for(lambda: rotated_count() == N_ROTATIONS, 300, "every rotation", cluster.logs,
             interval=0.5)

    rot = Rotary(cluster.nodes[0])
    reader = clients[0]

    def verify(name):
        d = reader.describe_secret(SecretId=name)
        st = {k: sorted(v) for k, v in d["VersionIdsToStages"].items()}
        cur = current_of(st)
        problems = []
        if st != {original[name]: ["AWSPREVIOUS"], cur: ["AWSCURRENT"]}:
            problems.append(f"stages {st}")
        real = [r for r in rot.history(name) if not r["TestOnly"]]
        ok = [r for r in real if r["Outcome"] == "Succeeded"]
        if len(ok) != 1 or len(real) != 1 or ok[0]["Token"] != cur:
            problems.append(f"history {[(r['Outcome'], r['Token']) for r in real]}")
        return name, problems

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            bad = [(n, p) for n, p in pool.map(verify, names) if p]
        assert not bad, f"{len(bad)} secrets wrong, e.g. {bad[:5]}"
        # Every node took part (the claims spread the work).
        started = {n.log_path.name: n.log_path.read_text(errors="replace").count(
            "Rotation succeeded") for n in cluster.nodes}
        assert sum(1 for v in started.values() if v > 0) >= 2, started
    finally:
        # The later tests need every node, whatever this one found.
        _restart_dead(cluster)


def test_node_killed_inside_a_step_has_its_rotation_finished_by_another(cluster):
    markers = lib.function_writable_dir("cluster")
    once = markers / "killed-once"
    rot = Rotary(cluster.nodes[0])
    fn = f"cl-crash-{uuid.uuid4().hex[:8]}"
    arn = rot.create_function(fn, Command=python_command(), TimeoutSeconds=60, Env={
        "MARKER_DIR": str(markers), "KILL_STEP": "setSecret", "KILL_ONCE_FILE": str(once)})
    sm = _client(cluster.nodes[0].url)
    name = lib.unique_name("cl-crash")
    orig = sm.create_secret(Name=name, SecretString=json.dumps(
        {"username": "app", "password": "orig"}))["VersionId"]
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    wait_for(lambda: (markers / "killed.txt").exists(), 60,
             "the function to finish setSecret's work", cluster.logs)
    # The node holding the claim is the one running the step: kill it.
    # Only this secret's claim: a claim left by a node killed in an earlier test may still
    # name that node until its secret's next rotation.
    owners = cluster.pg.sql(
        "SELECT c.owner FROM rotation_claims c JOIN secrets s ON s.uid = c.uid "
        "WHERE c.owner <> '' AND s.name = %s", (name,), dbname="rotary")
    assert len(owners) == 1, owners
    victim = next(n for n in cluster.nodes if "--node-id" in n.extra_args
                  and n.extra_args[n.extra_args.index("--node-id") + 1] == owners[0][0])
    victim.kill()
    survivor = Rotary(cluster.alive()[0])
    rec = survivor.wait_outcome(name, token, timeout=60)
    assert rec["Outcome"] == "Succeeded", rec
    recs = survivor.history(name)
    assert all(r["Token"] == token for r in recs), recs
    assert [r["Outcome"] for r in recs if not r["TestOnly"]] == ["Succeeded"], recs
    reader = _client(cluster.alive()[0].url)
    expected = {orig: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    st = _settled_stages(reader, name, expected)
    assert st == expected, st
    got = reader.get_secret_value(SecretId=name)
    assert got["VersionId"] == token
    # Resumed from the interrupted step, with the same token throughout.
    ran = (markers / "steps.log").read_text().split("\n")
    assert {line.split()[1] for line in ran if line} == {token}
    _restart_dead(cluster)


def test_database_restart_under_load_loses_nothing_acknowledged(cluster):
    clients = [_client(n.url) for n in cluster.nodes]
    prefix = lib.unique_name("cl-db")
    acked: dict[str, str] = {}
    failures = []
    stop = threading.Event()

    def writer(k):
        i = 0
        c = clients[k % N_NODES]
        while not stop.is_set():
            name = f"{prefix}-{k}-{i}"
            value = f"value-{k}-{i}"
            try:
                c.create_secret(Name=name, SecretString=value)
                acked[name] = value
            except (ClientError, EndpointConnectionError) as e:
                failures.append(str(e)[:200])
                time.sleep(0.05)
            i += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 30, 30, "writes before the restart", cluster.logs)
        cluster.pg.stop()
        before = len(failures)
        wait_for(lambda: len(failures) > before + 5, 30, "writes to fail while down",
                 cluster.logs)
        cluster.pg.start()
        n_after = len(acked)
        wait_for(lambda: len(acked) >= n_after + 30, 60,
                 "writes to succeed after the database is back", cluster.logs)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures and all("InternalServiceError" in f or "ServiceUnavailable" in f
                            or "Could not connect" in f for f in failures), failures[:5]
    # Every acknowledged write is there, on every node.
    for k, c in enumerate(clients):
        for name, value in list(acked.items())[k::N_NODES]:
            assert c.get_secret_value(SecretId=name)["SecretString"] == value
    # Health recovered by itself.
    for n in cluster.nodes:
        import urllib.request
        with urllib.request.urlopen(n.url + "/health", timeout=5) as r:
            assert r.status == 200
