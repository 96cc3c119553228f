-- ListSecrets pages in the query: one index per sort order, so that a page costs the same
-- with 100 or 100,000 secrets (keyset pagination on (sort key, uid)).
CREATE INDEX secrets_by_created ON secrets (namespace, created_ms, uid);
CREATE INDEX secrets_by_changed ON secrets (namespace, last_changed_ms, uid);
CREATE INDEX secrets_by_accessed ON secrets (namespace, COALESCE(last_accessed_ms, -1), uid);
CREATE INDEX secrets_by_name_uid ON secrets (namespace, name, uid);

-- Tag keys and values, kept from the JSON document (`doc.tags`, a list of [key, value]
-- pairs) by triggers, so that a tag-key filter is served by an index.
CREATE TABLE secret_tags (
    secret_uid TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL
);
CREATE INDEX secret_tags_by_key ON secret_tags (key, secret_uid);
CREATE INDEX secret_tags_by_secret ON secret_tags (secret_uid);

INSERT INTO secret_tags (secret_uid, key, value)
    SELECT s.uid, json_extract(t.value, '$[0]'), json_extract(t.value, '$[1]')
    FROM secrets s, json_each(s.doc, '$.tags') t;

CREATE TRIGGER secret_tags_insert AFTER INSERT ON secrets BEGIN
    INSERT INTO secret_tags (secret_uid, key, value)
        SELECT NEW.uid, json_extract(t.value, '$[0]'), json_extract(t.value, '$[1]')
        FROM json_each(NEW.doc, '$.tags') t;
END;

CREATE TRIGGER secret_tags_update AFTER UPDATE OF doc ON secrets
WHEN OLD.doc IS NOT NEW.doc BEGIN
    DELETE FROM secret_tags WHERE secret_uid = NEW.uid;
    INSERT INTO secret_tags (secret_uid, key, value)
        SELECT NEW.uid, json_extract(t.value, '$[0]'), json_extract(t.value, '$[1]')
        FROM json_each(NEW.doc, '$.tags') t;
END;

CREATE TRIGGER secret_tags_delete AFTER DELETE ON secrets BEGIN
    DELETE FROM secret_tags WHERE secret_uid = OLD.uid;
END;
