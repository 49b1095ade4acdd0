-- The audit trail: one row per state change, appended and never updated or
-- deleted (no statement in Plinth does either). `seq` orders it.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    time        BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    request_id  TEXT
);

CREATE INDEX audit_log_by_resource ON audit_log (resource, seq);
CREATE INDEX audit_log_by_time ON audit_log (time, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
