-- Rotation claims: which node runs a secret's rotation, until when (the database's clock,
-- `clock_timestamp()`, so that nodes' clocks need not agree), and the fencing token its
-- writes carry. A released claim keeps its row (owner '') so that the next claim's fence
-- keeps counting up; the row goes with the secret.
CREATE TABLE rotation_claims (
    uid            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    owner          TEXT COLLATE "C" NOT NULL,
    fence          BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL
);
