-- Rotation claims: which node runs a secret's rotation, until when (the store's clock), and
-- the fencing token its writes carry. A released claim keeps its row (owner '') so that the
-- next claim's fence keeps counting up; the row goes with the secret.
CREATE TABLE rotation_claims (
    uid            TEXT PRIMARY KEY NOT NULL,
    owner          TEXT NOT NULL,
    fence          INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL
);
