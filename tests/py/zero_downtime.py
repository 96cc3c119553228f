"""The zero-downtime harness the rotator tests share: rotate a secret back to back while a
client in another process keeps reading AWSCURRENT and logging in with it, and count the
logins that failed. Each rotator test gives its own login function and asserts on the
figures; `record_perf` keeps them in the test's perf file."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

import rotary_testlib as lib

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import Rotary, wait_for  # noqa: E402


def wait_rotated(sm, name, token, timeout=30.0, rot=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = sm.describe_secret(SecretId=name).get("VersionIdsToStages", {})
        if "AWSCURRENT" in st.get(token, []) and not any("AWSPENDING" in v for v in st.values()):
            return
        time.sleep(0.02)
    detail = json.dumps(rot.history(name, max_results=3), indent=1)[:4000] if rot else ""
    raise AssertionError(f"rotation {token} of {name} did not finish in {timeout}s\n{detail}")


def rotate_now(sm, name, fn):
    """RotateSecret, retried while the previous rotation is still being recorded."""
    for _ in range(200):
        try:
            return sm.rotate_secret(SecretId=name, RotationLambdaARN=fn,
                                    RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        except lib.ClientError as e:
            if e.response["Error"]["Code"] != "InvalidRequestException":
                raise
            time.sleep(0.02)
    raise AssertionError("RotateSecret kept refusing")


def run_zero_downtime(srv, name, fn, login, rotations=50, retry=False, paced=False,
                      passwords_seen: set | None = None) -> dict:
    """Rotates `name` `rotations` times, back to back, while a client reads AWSCURRENT with
    boto3 and calls login(value) -> (ok, error) (a NEW connection each time). The client
    runs in a forked process so the test's own polling cannot starve it of the GIL.

    retry: after a failed login the client re-reads AWSCURRENT and tries again, up to 5
    times, 50-200 ms apart. paced: each next rotation waits until the client has finished
    one more read+login (with its retries) after the previous rotation ended, so every
    rotation is seen by the client and no rotation overtakes a login in flight.

    A failed login is "overtaken" when enough newer rotations started between its read and
    its failure to have legitimately retired the credentials it read: two if the newest
    rotation had finished at the read (alternating users change the non-current user, so a
    value read as AWSCURRENT stays valid until the rotation after next changes it), else
    one. Returns the figures; `passwords_seen`, if given, receives every password the client
    read (for a leak check)."""
    ctx = multiprocessing.get_context("fork")
    stop, done, out = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    started, finished = ctx.Value("i", 0), ctx.Value("i", 0)

    def client_loop():
        client = lib.make_client(srv.url)
        st = {"passwords": set(), "attempts": 0, "failures": 0, "not_overtaken": 0,
              "recovered": 0, "unrecovered": 0, "errors": []}

        def attempt() -> bool:
            t0 = time.monotonic()
            got = client.get_secret_value(SecretId=name)
            t1 = time.monotonic()
            c0, f0 = started.value, finished.value
            v = json.loads(got["SecretString"])
            st["passwords"].add(v["password"])
            ok, err = login(v)
            if ok:
                return True
            overtaken = started.value >= c0 + (2 if f0 >= c0 else 1)
            st["not_overtaken"] += not overtaken
            if len(st["errors"]) < 5:
                st["errors"].append({"error": err, "version": got["VersionId"],
                                     "overtaken": overtaken,
                                     "read_ms": round((t1 - t0) * 1000, 1),
                                     "read_to_failure_ms": round((time.monotonic() - t1) * 1000, 1)})
            return False

        try:
            while not stop.is_set():
                st["attempts"] += 1
                if not attempt():
                    st["failures"] += 1
                    if retry:
                        ok = False
                        for delay in (0.05, 0.1, 0.15, 0.2, 0.2):
                            time.sleep(delay)
                            if attempt():
                                ok = True
                                break
                        st["recovered" if ok else "unrecovered"] += 1
                with done.get_lock():
                    done.value += 1
        except Exception as e:  # noqa: BLE001 - reported by the test, not lost in a process
            st["errors"].append(f"client crashed: {e!r}")
            st["unrecovered"] += 1
        out.put(st)

    proc = ctx.Process(target=client_loop, daemon=True)
    proc.start()
    try:
        wait_for(lambda: done.value > 0 or not proc.is_alive(), 20, "the client's first login")
        sm = srv.client()
        t0 = time.monotonic()
        for _ in range(rotations):
            with started.get_lock():
                started.value += 1
            token = rotate_now(sm, name, fn)
            wait_rotated(sm, name, token, rot=Rotary(srv))
            with finished.get_lock():
                finished.value += 1
            if paced:
                seen = done.value
                wait_for(lambda: done.value > seen or not proc.is_alive(), 30,
                         "the client's next login", interval=0.005)
        elapsed = time.monotonic() - t0
        # Rotations can finish faster than the client logs in (50 in 2.6 s on an idle
        # machine): it goes on until it has made at least one login per rotation, so the
        # figures always cover as many logins as rotations.
        wait_for(lambda: done.value >= rotations or not proc.is_alive(), 60,
                 "one login per rotation", interval=0.01)
    finally:
        stop.set()
        st = out.get(timeout=60)
        if passwords_seen is not None:
            passwords_seen.update(st["passwords"])
        proc.join(timeout=30)
    figures = {
        "function": fn.rsplit(":", 1)[-1],
        "rotations": rotations,
        "paced": paced,
        "seconds": round(elapsed, 2),
        "rotations_per_second": round(rotations / elapsed, 2),
        "login_attempts": st["attempts"],
        "failed_logins": st["failures"],
        "recovered_by_retry": st["recovered"],
        "unrecovered": st["unrecovered"],
        "sample_errors": st["errors"],
    }
    if not retry:
        figures["failed_not_overtaken"] = st["not_overtaken"]
    return figures


def record_perf(perf_file: Path, key: str, figures: dict) -> None:
    """Stores `figures` under `key` in the JSON file `perf_file` and prints them."""
    try:
        data = json.loads(perf_file.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = figures
    perf_file.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nperf[{key}]: {json.dumps(figures)}")
