"""Scheduler at scale: 1,000 secrets due at once after a clock jump all rotate exactly once.

Runs in CI (not marked slow). Prints the time from the clock advance to the last rotation;
the number goes to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


import rotary_testlib as lib

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import GENERIC, Rotary, current_of, wait_for  # noqa: E402

N_SECRETS = 1000
THREADS = 16


def _client(url):
    return lib.make_client(url, pool=THREADS * 2, read_timeout=60)


def _list_prefix(sm, prefix):
    """Every secret whose name starts with prefix (ListSecrets, 100 per page)."""
    out, token = [], None
    while True:
        kw = {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": 100}
        if token:
            kw["NextToken"] = token
        r = sm.list_secrets(**kw)
        out.extend(r["SecretList"])
        token = r.get("NextToken")
        if not token:
            return out


def _stages(entry):
    return {k: sorted(v) for k, v in entry.get("SecretVersionsToStages", {}).items()}


def test_thousand_due_rotations_after_clock_jump(tmp_path, capsys):
    srv = lib.Server(tmp_path / "scale", name="scale", env={"ROTARY_TEST_CLOCK": "true"})
    srv.start()
    try:
        line = _run(srv)
    finally:
        srv.stop()
    with capsys.disabled():  # shown even without -s: the figure goes to docs/PERFORMANCE.md
        print(line)


def _run(srv):
    sm = _client(srv.url)
    rot = Rotary(srv)
    prefix = lib.unique_name("scale")
    names = [f"{prefix}-{i:04d}" for i in range(N_SECRETS)]
    original = {}

    def setup(name):
        vid = sm.create_secret(Name=name, SecretString='{"username":"app","password":"p0"}')[
            "VersionId"]
        resp = sm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC,
                                RotationRules={"AutomaticallyAfterDays": 1},
                                RotateImmediately=False)
        assert "VersionId" not in resp, resp
        return name, vid

    t_setup = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        for name, vid in pool.map(setup, names):
            original[name] = vid
    setup_s = time.monotonic() - t_setup

    # The configuration tests (testSecret on a copy) finish and leave only the original.
    def settled():
        entries = _list_prefix(sm, prefix)
        return len(entries) == N_SECRETS and all(
            _stages(e) == {original[e["Name"]]: ["AWSCURRENT"]} for e in entries)

    wait_for(settled, 120, "the 1,000 test rotations to finish", lambda: srv.log_tail(20))

    t0 = time.monotonic()
    advanced_to = rot.advance(2 * 86400)

    def all_rotated():
        entries = _list_prefix(sm, prefix)
        done = 0
        for e in entries:
            st = _stages(e)
            cur = current_of(st)
            if (cur and cur != original[e["Name"]] and "LastRotatedDate" in e
                    and not any("AWSPENDING" in s for s in st.values())):
                done += 1
        return done == N_SECRETS

    wait_for(all_rotated, 300, "all 1,000 scheduled rotations", lambda: srv.log_tail(20),
             interval=0.2)
    elapsed = time.monotonic() - t0
    ended = []

    def verify(name):
        problems = []
        d = sm.describe_secret(SecretId=name)
        st = {k: sorted(v) for k, v in d["VersionIdsToStages"].items()}
        cur = current_of(st)
        if st != {original[name]: ["AWSPREVIOUS"], cur: ["AWSCURRENT"]} or cur == original[name]:
            problems.append(f"stages {st}")
        recs = rot.history(name)
        real = [r for r in recs if not r["TestOnly"]]
        ok = [r for r in real if r["Outcome"] == "Succeeded"]
        if len(ok) != 1 or len(real) != 1:
            problems.append(f"history {[(r['Outcome'], r['Trigger']) for r in real]}")
        elif ok[0]["Token"] != cur or ok[0]["Trigger"] != "schedule":
            problems.append(f"record {ok[0]['Token']} {ok[0]['Trigger']} vs current {cur}")
        else:
            ended.append(ok[0]["EndedAt"])
        tests = [r for r in recs if r["TestOnly"]]
        if len(tests) != 1 or tests[0]["Outcome"] != "Succeeded":
            problems.append(f"test rotations {[(r['Outcome']) for r in tests]}")
        value = sm.get_secret_value(SecretId=name)["SecretString"]
        if '"password":"p0"' in value.replace(" ", "") or '"username"' not in value:
            problems.append("value not rotated")
        return name, problems

    with ThreadPoolExecutor(THREADS) as pool:
        bad = [(n, p) for n, p in pool.map(verify, names) if p]
    assert not bad, f"{len(bad)} secrets wrong, e.g. {bad[:5]}"
    # The server's own view (its clock): from the advance to the last rotation's end.
    server_s = max(ended) - advanced_to
    return (f"\nrotation scale: {N_SECRETS} secrets created+configured in {setup_s:.1f}s; "
            f"{N_SECRETS} scheduled rotations done {elapsed:.1f}s after the clock advance as "
            f"polled ({server_s:.1f}s by the server's history, "
            f"{N_SECRETS / server_s:.1f} rotations/s)")
