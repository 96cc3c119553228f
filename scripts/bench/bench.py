#!/usr/bin/env python3
"""Client side of scripts/bench/run (issue #15): signing, bulk creation and the scale steps.

Only the standard library: requests are signed here with SigV4 (the signing key derived
once per day, as the SDKs cache it) and sent over keep-alive http.client connections, one
per thread, so creating 10,000 secrets is bound by the server rather than by botocore.

Subcommands (all take --url; the root key comes from ROTARY_ROOT_ACCESS_KEY_ID and
ROTARY_ROOT_SECRET_ACCESS_KEY, as the server's):
  serve         spawn a server, wait for /health; print its pid and the ms that took
  create        create --count secrets named PREFIX-000000.. concurrently
  sign-get      write a wrk request file: one GetSecretValue per secret (replay.lua); signed
                with BENCH_ACCESS_KEY_ID / BENCH_SECRET_ACCESS_KEY when set (see `user`)
  user          create an IAM user allowed GetSecretValue on PREFIX-*; print its access key
  sign-put      write a wrk request file: PutSecretValue, distinct ClientRequestTokens
  writers       N concurrent writers to one secret; outcomes by error type
  list          ListSecrets, first page of 100: median of 10, without and with a filter
  read-all      GetSecretValue on every secret of a prefix (before an RSS reading)
  rotations     N built-in rotations falling due at once (needs --test-clock)
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

REGION = "us-east-1"
SERVICE = "secretsmanager"
CONTENT_TYPE = "application/x-amz-json-1.1"
SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"
GENERIC = "arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password"
VALUE = json.dumps({"username": "app", "password": "x" * 32})


class Signer:
    """SigV4 for `POST /` JSON 1.1 requests, with the day's signing key cached."""

    def __init__(self, host: str):
        self.host = host
        self.akid = os.environ["ROTARY_ROOT_ACCESS_KEY_ID"]
        self.secret = os.environ["ROTARY_ROOT_SECRET_ACCESS_KEY"]
        self._keys: dict[str, bytes] = {}

    @classmethod
    def for_requests(cls, host: str) -> "Signer":
        """The root key, or the one in BENCH_ACCESS_KEY_ID / BENCH_SECRET_ACCESS_KEY."""
        s = cls(host)
        if os.environ.get("BENCH_ACCESS_KEY_ID"):
            s.akid = os.environ["BENCH_ACCESS_KEY_ID"]
            s.secret = os.environ["BENCH_SECRET_ACCESS_KEY"]
        return s

    def _key(self, day: str) -> bytes:
        k = self._keys.get(day)
        if k is None:
            k = ("AWS4" + self.secret).encode()
            for part in (day, REGION, SERVICE, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._keys[day] = k
        return k

    def sign(self, target: str, body: bytes, amz_date: str | None = None) -> tuple[str, str]:
        """(x-amz-date, authorization) for a POST / with these target and body."""
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        canonical = (f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{self.host}\n"
                     f"x-amz-date:{amz_date}\nx-amz-target:{target}\n\n{SIGNED_HEADERS}\n"
                     f"{hashlib.sha256(body).hexdigest()}")
        scope = f"{day}/{REGION}/{SERVICE}/aws4_request"
        to_sign = (f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        sig = hmac.digest(self._key(day), to_sign.encode(), "sha256").hex()
        auth = (f"AWS4-HMAC-SHA256 Credential={self.akid}/{scope}, "
                f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}")
        return amz_date, auth


class Client:
    """A thread-safe client: one keep-alive connection per thread."""

    def __init__(self, url: str):
        u = urllib.parse.urlsplit(url)
        self.netloc = u.netloc
        self.signer = Signer(u.netloc)
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.netloc, timeout=120)
            self._local.conn = c
        return c

    def call(self, target: str, payload: dict) -> tuple[int, dict]:
        """(status, decoded body); `target` without a dot means secretsmanager.TARGET."""
        if "." not in target:
            target = f"secretsmanager.{target}"
        body = json.dumps(payload).encode()
        amz_date, auth = self.signer.sign(target, body)
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": target,
                   "X-Amz-Date": amz_date, "Authorization": auth}
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request("POST", "/", body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        try:
            return r.status, json.loads(data) if data else {}
        except ValueError:
            return r.status, {"__type": "NotJson", "message": data[:200].decode("latin-1")}

    def ok(self, target: str, payload: dict) -> dict:
        status, out = self.call(target, payload)
        if status != 200:
            sys.exit(f"{target}({json.dumps(payload)[:200]}) -> {status} {out}")
        return out


def error_type(out: dict) -> str:
    return str(out.get("__type", "?")).rsplit("#", 1)[-1]


def create_request(name: str) -> dict:
    # The SDKs fill in ClientRequestToken; a bare client must send one.
    return {"Name": name, "SecretString": VALUE, "ClientRequestToken": str(uuid.uuid4())}


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(count)]


def pool_map(fn, items, threads: int):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items, chunksize=64))


# ---- subcommands ----------------------------------------------------------------------------

def cmd_serve(a) -> None:
    """Spawns a server (its output to --log) and waits for /health: prints its pid and the
    milliseconds from spawn to the first 200, timed here so the poller's own start-up
    (hundreds of ms for a Python process on a busy machine) is not counted. The server
    outlives this process; the caller stops it by pid."""
    import subprocess

    u = urllib.parse.urlsplit(a.url)
    with open(a.log, "ab") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(a.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = t0 + a.timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{a.command[0]} exited with {proc.returncode} during start-up")
        try:
            c = http.client.HTTPConnection(u.netloc, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                print(proc.pid, f"{(time.perf_counter() - t0) * 1000:.0f}")
                return
        except OSError:
            pass
        time.sleep(0.002)
    proc.kill()
    sys.exit(f"{a.url}/health not ready after {a.timeout}s")


def cmd_create(a) -> None:
    cl = Client(a.url)
    wanted = names(a.prefix, a.count)[a.start:]
    t0 = time.monotonic()

    def one(name: str) -> str:
        status, out = cl.call("CreateSecret", create_request(name))
        if status == 200:
            return "ok"
        return error_type(out)

    outcomes = Counter(pool_map(one, wanted, a.threads))
    dt = time.monotonic() - t0
    bad = {k: v for k, v in outcomes.items() if k != "ok"}
    print(f"created {outcomes['ok']} secrets {a.prefix}-* in {dt:.1f}s "
          f"({len(wanted) / dt:.0f}/s){' errors ' + str(bad) if bad else ''}", file=sys.stderr)
    if bad:
        sys.exit(1)


def write_requests(path: str, rows) -> int:
    """One request a line: target TAB x-amz-date TAB authorization TAB body (replay.lua)."""
    n = 0
    with open(path, "w") as f:
        for target, amz_date, auth, body in rows:
            f.write(f"{target}\t{amz_date}\t{auth}\t{body}\n")
            n += 1
    return n


def cmd_user(a) -> None:
    """An IAM user whose one inline policy allows GetSecretValue on the secrets PREFIX-*, as
    an application's role would be; prints "ACCESS_KEY_ID SECRET_ACCESS_KEY"."""
    cl = Client(a.url)
    cl.ok("rotary.CreateUser", {"UserName": a.name})
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadAppSecrets", "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": f"arn:aws:secretsmanager:{REGION}:*:secret:{a.prefix}-*"}]}
    cl.ok("rotary.PutUserPolicy", {"UserName": a.name, "PolicyName": "read",
                                   "PolicyDocument": json.dumps(policy)})
    key = cl.ok("rotary.CreateAccessKey", {"UserName": a.name})["AccessKey"]
    print(key["AccessKeyId"], key["SecretAccessKey"])


def cmd_sign_get(a) -> None:
    s = Signer.for_requests(urllib.parse.urlsplit(a.url).netloc)
    target = "secretsmanager.GetSecretValue"

    def rows():
        for name in names(a.prefix, a.count) if a.count else [a.prefix]:
            body = json.dumps({"SecretId": name})
            yield (target, *s.sign(target, body.encode()), body)

    write_requests(a.out, rows())


def cmd_sign_put(a) -> None:
    s = Signer(urllib.parse.urlsplit(a.url).netloc)
    target = "secretsmanager.PutSecretValue"
    secrets = names(a.prefix, a.secrets)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    t0 = time.monotonic()

    def rows():
        for i in range(a.requests):
            # Formatted by hand (the names and values need no escaping): json.dumps and
            # uuid4 were most of the time. A token is 32 random hex digits.
            body = (f'{{"SecretId":"{secrets[i % len(secrets)]}",'
                    f'"ClientRequestToken":"{os.urandom(16).hex()}",'
                    f'"SecretString":"{{\\"username\\":\\"app\\",\\"n\\":{i}}}"}}')
            yield (target, *s.sign(target, body.encode(), amz_date), body)

    n = write_requests(a.out, rows())
    print(f"signed {n} PutSecretValue requests in {time.monotonic() - t0:.1f}s",
          file=sys.stderr)


def cmd_writers(a) -> None:
    """Each round: a fresh secret, then --writers threads released at once by a barrier,
    one PutSecretValue each (a fresh secret per round keeps it under the version quota)."""
    cl = Client(a.url)
    results, currents, dt = [], [], 0.0
    for r in range(a.rounds):
        secret = f"{a.prefix}-{r}"
        cl.ok("CreateSecret", create_request(secret))
        barrier = threading.Barrier(a.writers + 1)

        def writer(w: int) -> str:
            barrier.wait()
            status, body = cl.call("PutSecretValue", {
                "SecretId": secret, "ClientRequestToken": str(uuid.uuid4()),
                "SecretString": json.dumps({"writer": w, "round": r})})
            return "ok" if status == 200 else error_type(body)

        with ThreadPoolExecutor(a.writers) as pool:
            futures = [pool.submit(writer, w) for w in range(a.writers)]
            barrier.wait()
            t0 = time.monotonic()
            results += [f.result() for f in futures]
            dt += time.monotonic() - t0
        stages = cl.ok("DescribeSecret", {"SecretId": secret}).get("VersionIdsToStages", {})
        currents.append(sum(1 for st in stages.values() if "AWSCURRENT" in st))
    c = Counter(results)
    errs = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "ok") or "none"
    print(f"{a.writers} concurrent writers to one secret ({a.rounds} rounds, one "
          f"PutSecretValue each): {c['ok']}/{len(results)} ok, {dt / a.rounds:.2f}s a round; "
          f"errors: {errs}; AWSCURRENT versions per secret after: {sorted(set(currents))}")


def cmd_list(a) -> None:
    cl = Client(a.url)

    def median_ms(payload: dict) -> tuple[float, int]:
        times, n = [], 0
        for _ in range(10):
            t0 = time.perf_counter()
            out = cl.ok("ListSecrets", payload)
            times.append((time.perf_counter() - t0) * 1000)
            n = len(out.get("SecretList", []))
        return statistics.median(times), n

    plain, n1 = median_ms({"MaxResults": 100})
    filt, n2 = median_ms({"MaxResults": 100,
                          "Filters": [{"Key": "name", "Values": [a.filter]}]})
    print(f"ListSecrets, first page of 100, median of 10, {a.label}: {plain:.1f} ms "
          f"({n1} entries); with name filter {a.filter!r}: {filt:.1f} ms ({n2} entries)")


def cmd_read_all(a) -> None:
    cl = Client(a.url)
    t0 = time.monotonic()
    got = pool_map(lambda n: cl.call("GetSecretValue", {"SecretId": n})[0],
                   names(a.prefix, a.count), a.threads)
    bad = sum(1 for s in got if s != 200)
    print(f"read {len(got)} secrets in {time.monotonic() - t0:.1f}s, {bad} not 200",
          file=sys.stderr)


def cmd_rotations(a) -> None:
    cl = Client(a.url)
    todo = names(a.prefix, a.count)

    def setup(name: str) -> tuple[str, str]:
        vid = cl.ok("CreateSecret", create_request(name))["VersionId"]
        cl.ok("RotateSecret", {"SecretId": name, "RotationLambdaARN": GENERIC,
                               "ClientRequestToken": str(uuid.uuid4()),
                               "RotationRules": {"AutomaticallyAfterDays": 1},
                               "RotateImmediately": False})
        return name, vid

    t0 = time.monotonic()
    original = dict(pool_map(setup, todo, a.threads))
    setup_s = time.monotonic() - t0

    def listing() -> list[dict]:
        out, token = [], None
        while True:
            p = {"MaxResults": 100, "Filters": [{"Key": "name", "Values": [a.prefix + "-"]}]}
            if token:
                p["NextToken"] = token
            r = cl.ok("ListSecrets", p)
            out.extend(r.get("SecretList", []))
            token = r.get("NextToken")
            if not token:
                return out

    def wait(pred, what: str) -> None:
        deadline = time.monotonic() + a.timeout
        while not pred(listing()):
            if time.monotonic() > deadline:
                sys.exit(f"rotations: {what} not done after {a.timeout}s")
            time.sleep(0.25)

    def stages(e: dict) -> dict:
        return e.get("SecretVersionsToStages", {})

    # RotateSecret with RotateImmediately=false tests the function on a copy first; wait
    # until every secret is back to its one original version.
    wait(lambda es: len(es) == a.count and all(
        stages(e) == {original[e["Name"]]: ["AWSCURRENT"]} for e in es), "test rotations")

    def current(e: dict) -> str | None:
        return next((v for v, st in stages(e).items() if "AWSCURRENT" in st), None)

    def all_done(es: list[dict]) -> bool:
        return sum(1 for e in es if "LastRotatedDate" in e
                   and current(e) not in (None, original[e["Name"]])
                   and not any("AWSPENDING" in st for st in stages(e).values())) == a.count

    t1 = time.monotonic()
    cl.ok("rotary.AdvanceTestClock", {"Seconds": 2 * 86400})
    wait(all_done, "scheduled rotations")
    dt = time.monotonic() - t1
    print(f"{a.count} rotations (rotary-generic-password) due at once: all done "
          f"{dt:.1f}s after the clock advance ({a.count / dt:.0f}/s, polled every 0.25 s); "
          f"setup (create + RotateSecret + test rotations) {setup_s:.1f}s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn):
        sp = sub.add_parser(name)
        sp.add_argument("--url", required=True)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("serve", cmd_serve)
    sp.add_argument("--log", required=True)
    sp.add_argument("--timeout", type=float, default=60.0)
    sp.add_argument("command", nargs="+", help="the server's command line, after --")
    sp = add("create", cmd_create)
    sp.add_argument("--prefix", required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--start", type=int, default=0, help="skip the first START names")
    sp.add_argument("--threads", type=int, default=16)
    sp = add("sign-get", cmd_sign_get)
    sp.add_argument("--prefix", required=True, help="the secret's name when --count is 0")
    sp.add_argument("--count", type=int, default=0)
    sp.add_argument("--out", required=True)
    sp = add("user", cmd_user)
    sp.add_argument("--name", default="bench-reader")
    sp.add_argument("--prefix", required=True)
    sp = add("sign-put", cmd_sign_put)
    sp.add_argument("--prefix", required=True)
    sp.add_argument("--secrets", type=int, default=400)
    sp.add_argument("--requests", type=int, default=200_000)
    sp.add_argument("--out", required=True)
    sp = add("writers", cmd_writers)
    sp.add_argument("--prefix", default="writers")
    sp.add_argument("--writers", type=int, default=64)
    sp.add_argument("--rounds", type=int, default=3)
    sp = add("list", cmd_list)
    sp.add_argument("--filter", required=True)
    sp.add_argument("--label", default="")
    sp = add("read-all", cmd_read_all)
    sp.add_argument("--prefix", required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--threads", type=int, default=8)
    sp = add("rotations", cmd_rotations)
    sp.add_argument("--prefix", default="rot")
    sp.add_argument("--count", type=int, default=1000)
    sp.add_argument("--threads", type=int, default=16)
    sp.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
