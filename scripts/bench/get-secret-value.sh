#!/usr/bin/env bash
# Throughput and latency of GetSecretValue on a release build: starts a server in a temp
# dir, creates one secret, signs one GetSecretValue request with botocore (a SigV4
# signature stays valid for 5 minutes) and replays it with wrk from a second process.
# Usage: scripts/bench/get-secret-value.sh [DURATION_SECONDS] [CONNECTIONS] [root|user]
# `user` signs as a user whose inline policy has ten statements (the allowing one last), to
# measure what policy evaluation costs against the root key, which skips identity policies.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
conns=${2:-32}
principal=${3:-root}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ROTARY_ROOT_ACCESS_KEY_ID=AKIABENCH00000000000 ROTARY_ROOT_SECRET_ACCESS_KEY=bench-secret-key
ROTARY_LOG=warn ./target/release/rotary serve --data-dir "$dir" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
python3 - "$port" "$principal" > "$dir/req.lua" <<'PY'
import json, sys, urllib.request, boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
port = sys.argv[1]
url = f"http://127.0.0.1:{port}/"
sm = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="AKIABENCH00000000000", aws_secret_access_key="bench-secret-key")
sm.create_secret(Name="bench/db", SecretString=json.dumps({"username": "app", "password": "x" * 32}))
def signed(target, payload, akid, secret):
    req = AWSRequest(method="POST", url=url, data=payload, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(akid, secret), "secretsmanager", "us-east-1").add_auth(req)
    return req

def rotary(op, payload):
    req = signed(f"rotary.{op}", json.dumps(payload), "AKIABENCH00000000000", "bench-secret-key")
    r = urllib.request.Request(url, data=req.body, headers=dict(req.headers), method="POST")
    return json.load(urllib.request.urlopen(r))

akid, secret = "AKIABENCH00000000000", "bench-secret-key"
if sys.argv[2] == "user":
    statements = [
        {"Sid": f"Other{i}", "Effect": "Allow", "Action": f"secretsmanager:Describe{i}",
         "Resource": f"arn:aws:secretsmanager:*:*:secret:team{i}/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/team": f"t{i}"}}}
        for i in range(9)
    ] + [{"Sid": "Read", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
          "Resource": "arn:aws:secretsmanager:*:*:secret:bench/*"}]
    rotary("CreateUser", {"UserName": "bench"})
    rotary("PutUserPolicy", {"UserName": "bench", "PolicyName": "ten", "PolicyDocument":
                             json.dumps({"Version": "2012-10-17", "Statement": statements})})
    key = rotary("CreateAccessKey", {"UserName": "bench"})["AccessKey"]
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]
body = json.dumps({"SecretId": "bench/db"})
req = signed("secretsmanager.GetSecretValue", body, akid, secret)
print('wrk.method = "POST"')
print(f"wrk.body = {json.dumps(body)}")
for k, v in req.headers.items():
    if k.lower() != "host":
        print(f'wrk.headers["{k}"] = "{v}"')
print('function response(status, headers, body) if status ~= 200 then io.stderr:write("non-200: " .. status .. "\\n") end end')
PY
wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$dir/req.lua" "http://127.0.0.1:$port/"
