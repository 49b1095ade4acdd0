-- A deployment's named metrics and its policy (with the policy's progress),
-- stored as core's types serialize them.
ALTER TABLE deployments ADD COLUMN metrics_json TEXT;
ALTER TABLE deployments ADD COLUMN policy_json TEXT;
-- Why Plinth decided what it did on its own (a policy's figures).
ALTER TABLE audit_log ADD COLUMN detail TEXT;
-- Leases on work that one process of many does at a time (the policy
-- evaluator): held by `holder` until `expires` (ms), renewed by it.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    expires  BIGINT NOT NULL
);
