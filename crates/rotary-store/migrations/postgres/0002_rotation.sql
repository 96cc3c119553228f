-- When the rotation scheduler should next look at a secret: a random instant in its next
-- rotation window, a retry time, or now for a rotation requested through the API.
ALTER TABLE secrets ADD COLUMN rotation_due_ms BIGINT;
CREATE INDEX secrets_by_rotation_due ON secrets (rotation_due_ms)
    WHERE rotation_due_ms IS NOT NULL;

-- One row per rotation attempt; `record` is JSON owned by the rotation engine and never
-- holds a secret value.
CREATE TABLE rotation_history (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    secret_uid TEXT COLLATE "C" NOT NULL,
    started_ms BIGINT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX rotation_history_by_secret ON rotation_history (secret_uid, started_ms);
