"""A rotation function for Rotary's tests, run as a process function (`python3 py_rotator.py`).

It reads the Lambda rotation event on stdin and implements the four steps like AWS's
templates do, with boto3 against SECRETS_MANAGER_ENDPOINT and the temporary credentials
Rotary puts in its environment:
  createSecret  reads AWSCURRENT; if the token has no AWSPENDING value yet, generates a
                password (GetRandomPassword) and stores it with PutSecretValue(token,
                AWSPENDING) (the `password` member of a JSON object, or the whole string)
  setSecret     nothing to set (records it)
  testSecret    reads the pending value back by VersionId + VersionStage
  finishSecret  moves AWSCURRENT to the token (UpdateSecretVersionStage)

Knobs (all optional, through the function's Env):
  MARKER_DIR      directory where it records what it did: steps.log, events.log (each event
                  as received), created.txt (the value it generated), tested.txt (the pending
                  value testSecret read), other.txt (result of reading OTHER_SECRET)
  OTHER_SECRET    a secret id to try reading with the temporary credentials
  FAIL_STEP       the step to fail (message on stderr, exit 1)
  FAIL_UNLESS     file: FAIL_STEP applies only while this file does not exist
  KILL_STEP, KILL_ONCE_FILE
                  after doing KILL_STEP's work, record killed.txt and wait for the test to
                  SIGKILL the server (once: the file is created first, and nothing happens
                  when it exists)
  BLOCK_STEP, BLOCKED_FILE, RELEASE_FILE
                  at the start of BLOCK_STEP, write its pid to BLOCKED_FILE and wait (up to 60 s) for
                  RELEASE_FILE; no blocking when RELEASE_FILE already exists
  PROBE_FILE      in createSecret, try what the temporary credentials may do (other secrets,
                  account-wide calls, admin calls on its own secret, Rotary's own API) and
                  write {call: "OK" | error code} there as JSON (needs OTHER_SECRET)
  GARBAGE=1       print binary junk on stdout and stderr in every step
  PRINT_VALUES=1  print the current and pending values (to check that Rotary redacts them)
  WRITE_SHAPE     createSecret stores a value of another shape than AWSCURRENT:
                  `binary` (SecretBinary), `drop-member` (the JSON object without its
                  `username`), `plain` (the bare password instead of the JSON object)
  SKIP_FINISH=1   finishSecret does nothing (AWSCURRENT never moves)
"""

import json
import os
import signal
import sys
import time

import functools

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENV = os.environ
print = functools.partial(print, flush=True)  # keep stdout and stderr in order


def record(name, text, mode="a"):
    d = ENV.get("MARKER_DIR")
    if d:
        with open(os.path.join(d, name), mode) as f:
            f.write(text)


def junk():
    blob = bytes(range(256)) * 64 + b"\x1b[31mred\x1b[0m\xff\xfe\x00\x00not-json{{{"
    sys.stdout.buffer.write(blob + b"\n")
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(blob[::-1] + b"\n")
    sys.stderr.buffer.flush()


def client():
    return boto3.client(
        "secretsmanager",
        endpoint_url=ENV["SECRETS_MANAGER_ENDPOINT"],
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20),
    )


def rotary_call(op, body):
    """A call to Rotary's own API signed with the temporary credentials; returns the
    status and the error type, if any."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = ENV["SECRETS_MANAGER_ENDPOINT"] + "/"
    req = AWSRequest(method="POST", url=url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "rotary." + op})
    creds = Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"],
                        ENV.get("AWS_SESSION_TOKEN"))
    SigV4Auth(creds, "secretsmanager", ENV["AWS_REGION"]).add_auth(req)
    http_req = urllib.request.Request(url, data=req.body, headers=dict(req.headers.items()),
                                      method="POST")
    try:
        with urllib.request.urlopen(http_req, timeout=20):
            return "OK"
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}").get("__type", str(e.code)).split("#")[-1]


def probe(sm, arn, path):
    other = ENV["OTHER_SECRET"]
    own_policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    calls = {
        "other.DescribeSecret": lambda: sm.describe_secret(SecretId=other),
        "other.GetSecretValue": lambda: sm.get_secret_value(SecretId=other),
        "other.PutSecretValue": lambda: sm.put_secret_value(SecretId=other, SecretString="x"),
        "other.UpdateSecretVersionStage": lambda: sm.update_secret_version_stage(
            SecretId=other, VersionStage="X", MoveToVersionId="a" * 32),
        "other.ListSecretVersionIds": lambda: sm.list_secret_version_ids(SecretId=other),
        "other.BatchGetSecretValue": lambda: sm.batch_get_secret_value(SecretIdList=[other]),
        "other.DeleteSecret": lambda: sm.delete_secret(SecretId=other),
        "ListSecrets": lambda: sm.list_secrets(),
        "BatchGetSecretValue.filter": lambda: sm.batch_get_secret_value(
            Filters=[{"Key": "name", "Values": [""]}]),
        "CreateSecret": lambda: sm.create_secret(Name="made-by-a-rotation-function",
                                                 SecretString="x"),
        "GetRandomPassword": lambda: sm.get_random_password(),
        "own.DescribeSecret": lambda: sm.describe_secret(SecretId=arn),
        "own.ListSecretVersionIds": lambda: sm.list_secret_version_ids(SecretId=arn),
        "own.UpdateSecret": lambda: sm.update_secret(SecretId=arn, Description="by function"),
        "own.TagResource": lambda: sm.tag_resource(SecretId=arn,
                                                   Tags=[{"Key": "k", "Value": "v"}]),
        "own.PutResourcePolicy": lambda: sm.put_resource_policy(SecretId=arn,
                                                                ResourcePolicy=own_policy),
        "own.RotateSecret": lambda: sm.rotate_secret(SecretId=arn),
        "own.CancelRotateSecret": lambda: sm.cancel_rotate_secret(SecretId=arn),
        "own.DeleteSecret": lambda: sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = "OK"
        except ClientError as e:
            out[name] = e.response["Error"]["Code"]
    for op, body in (("CreateFunction", {"Name": "made-by-fn", "Command": "true"}),
                     ("ListFunctions", {}), ("DeleteFunction", {"Name": "x"}),
                     ("GetRotationHistory", {"SecretId": other}),
                     ("GetRotationHistory.own", {"SecretId": arn}),
                     ("GetComplianceReport", {}), ("AdvanceTestClock", {"Seconds": 1})):
        out["rotary." + op] = rotary_call(op.split(".")[0], body)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


def create_secret(sm, event):
    arn, token = event["SecretId"], event["ClientRequestToken"]
    current = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    if ENV.get("PROBE_FILE") and not os.path.exists(ENV["PROBE_FILE"]):
        probe(sm, arn, ENV["PROBE_FILE"])
    if ENV.get("OTHER_SECRET"):
        try:
            sm.get_secret_value(SecretId=ENV["OTHER_SECRET"])
            record("other.txt", "READ-SUCCEEDED", "w")
        except ClientError as e:
            err = e.response["Error"]
            record("other.txt", "%s: %s" % (err.get("Code"), err.get("Message")), "w")
    try:
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        print("createSecret: pending value already stored")
        return
    except sm.exceptions.ResourceNotFoundException:
        pass
    password = sm.get_random_password(PasswordLength=32, ExcludePunctuation=True)[
        "RandomPassword"]
    old = current.get("SecretString")
    try:
        doc = json.loads(old) if old is not None else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        doc["password"] = password
        new = json.dumps(doc)
    else:
        new = password
    kwargs = dict(SecretId=arn, ClientRequestToken=token, VersionStages=["AWSPENDING"])
    if event.get("RotationToken"):
        kwargs["RotationToken"] = event["RotationToken"]
    shape = ENV.get("WRITE_SHAPE")
    if shape == "drop-member" and isinstance(doc, dict):
        doc.pop("username", None)
        new = json.dumps(doc)
    elif shape == "plain":
        new = password
    if shape == "binary":
        kwargs["SecretBinary"] = b"\x00\x01binary:" + new.encode()
    else:
        kwargs["SecretString"] = new
    sm.put_secret_value(**kwargs)
    record("created.txt", new, "w")
    print("createSecret: stored a new AWSPENDING value")


def set_secret(sm, event):
    record("set.txt", event["ClientRequestToken"] + "\n")
    print("setSecret: nothing to set")


def test_secret(sm, event):
    arn, token = event["SecretId"], event["ClientRequestToken"]
    pending = sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    if ENV.get("PRINT_VALUES") == "1":
        current = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
        print("current value: %s" % current.get("SecretString"))
        print("pending value: %s" % pending.get("SecretString"))
        sys.stderr.write("pending again: %s\n" % pending.get("SecretString"))
    record("tested.txt", json.dumps({"token": token, "value": pending.get("SecretString")}), "w")
    print("testSecret: pending value readable")


def finish_secret(sm, event):
    arn, token = event["SecretId"], event["ClientRequestToken"]
    if ENV.get("SKIP_FINISH") == "1":
        print("finishSecret: doing nothing")
        return
    meta = sm.describe_secret(SecretId=arn)
    current = None
    for vid, stages in meta["VersionIdsToStages"].items():
        if "AWSCURRENT" in stages:
            current = vid
    if current == token:
        print("finishSecret: already AWSCURRENT")
        return
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                   MoveToVersionId=token, RemoveFromVersionId=current)
    print("finishSecret: moved AWSCURRENT")


STEPS = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": test_secret,
    "finishSecret": finish_secret,
}


def main():
    event = json.load(sys.stdin)
    step = event["Step"]
    record("steps.log", "%s %s\n" % (step, event["ClientRequestToken"]))
    record("events.log", json.dumps(event) + "\n")
    if ENV.get("GARBAGE") == "1":
        junk()
    if ENV.get("FAIL_STEP") == step and not (
            ENV.get("FAIL_UNLESS") and os.path.exists(ENV["FAIL_UNLESS"])):
        sys.stderr.write("simulated failure in %s\n" % step)
        return 1
    if ENV.get("BLOCK_STEP") == step and not os.path.exists(ENV["RELEASE_FILE"]):
        record("blocked.txt", event["ClientRequestToken"])
        with open(ENV["BLOCKED_FILE"], "w") as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not os.path.exists(ENV["RELEASE_FILE"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    STEPS[step](client(), event)
    if ENV.get("KILL_STEP") == step and not os.path.exists(ENV["KILL_ONCE_FILE"]):
        # The sandbox keeps the server out of a function's reach, so the test kills it: this
        # says the step's work is done and waits to be killed with the server.
        open(ENV["KILL_ONCE_FILE"], "w").close()
        record("killed.txt", "%s\n" % step)
        time.sleep(120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
