// Rotary smoke test with the AWS SDK for JavaScript v3, run by tests/py/test_sigv4_strict.py
// against a real server. It checks that the SDK's requests pass Rotary's strict SigV4
// verification (body hash, signed X-Amz-Target and Content-Type; issue #9) and that the
// errors come back as the SDK's typed exceptions.
//
// Environment: ROTARY_ENDPOINT (e.g. http://127.0.0.1:4566), AWS_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, SMOKE_PREFIX (a unique secret-name prefix).
// Prints one JSON line with what it saw; exits non-zero on the first failed check.
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import assert from "node:assert/strict";

const endpoint = process.env.ROTARY_ENDPOINT;
const region = process.env.AWS_REGION;
const prefix = process.env.SMOKE_PREFIX ?? `js-${Date.now()}`;
assert.ok(endpoint, "ROTARY_ENDPOINT is not set");
assert.ok(region, "AWS_REGION is not set");

const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID,
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
};
const client = new SecretsManagerClient({ endpoint, region, credentials, maxAttempts: 1 });

const name = `${prefix}-secret`;
const seen = { sdk: "@aws-sdk/client-secrets-manager" };

const created = await client.send(
  new CreateSecretCommand({ Name: name, SecretString: "js-first", Description: "from JS v3" }),
);
assert.match(created.ARN, new RegExp(`:secret:${name}-[A-Za-z0-9]{6}$`));
seen.created = created.ARN;

const got = await client.send(new GetSecretValueCommand({ SecretId: name }));
assert.equal(got.SecretString, "js-first");
assert.deepEqual(got.VersionStages, ["AWSCURRENT"]);

const put = await client.send(
  new PutSecretValueCommand({ SecretId: name, SecretBinary: new Uint8Array([0, 1, 2, 255]) }),
);
const got2 = await client.send(new GetSecretValueCommand({ SecretId: created.ARN }));
assert.equal(got2.VersionId, put.VersionId);
assert.deepEqual([...got2.SecretBinary], [0, 1, 2, 255]);

const described = await client.send(new DescribeSecretCommand({ SecretId: name }));
assert.equal(described.Description, "from JS v3");
assert.ok(described.LastChangedDate instanceof Date);
assert.equal(Object.keys(described.VersionIdsToStages).length, 2);

const listed = await client.send(
  new ListSecretsCommand({ Filters: [{ Key: "name", Values: [name] }] }),
);
assert.deepEqual(
  listed.SecretList.map((s) => s.Name),
  [name],
);

// A typed error from the service.
await assert.rejects(
  client.send(new GetSecretValueCommand({ SecretId: `${prefix}-absent` })),
  (e) => e instanceof ResourceNotFoundException && e.$metadata.httpStatusCode === 400,
);

// A wrong secret key is refused with AWS's signature-mismatch error.
const wrong = new SecretsManagerClient({
  endpoint,
  region,
  credentials: { ...credentials, secretAccessKey: `${credentials.secretAccessKey}x` },
  maxAttempts: 1,
});
await assert.rejects(wrong.send(new GetSecretValueCommand({ SecretId: name })), (e) => {
  assert.equal(e.name, "InvalidSignatureException");
  assert.match(e.message, /^The request signature we calculated does not match/);
  assert.ok(!JSON.stringify(e).includes("js-first"));
  return true;
});

await client.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));
await assert.rejects(
  client.send(new DescribeSecretCommand({ SecretId: name })),
  ResourceNotFoundException,
);
seen.ok = true;
console.log(JSON.stringify(seen));
