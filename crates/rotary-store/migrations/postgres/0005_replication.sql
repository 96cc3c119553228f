-- When the replication shipper should next send a secret to its replica regions: set by the
-- write that makes the replicas stale, in the same transaction, so that the row itself is
-- the durable outbox (a crash between the write and the send loses nothing).
ALTER TABLE secrets ADD COLUMN replication_due_ms BIGINT;
CREATE INDEX secrets_by_replication_due ON secrets (replication_due_ms)
    WHERE replication_due_ms IS NOT NULL;
