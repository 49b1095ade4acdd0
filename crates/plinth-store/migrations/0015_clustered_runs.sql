-- plinth:foreign-keys-off
-- Runs and the per-run tables that a run search reads for every candidate run
-- (runs, params, tags, latest_metrics), clustered by their keys: one B-tree
-- each instead of a rowid table plus the index of its key, so a lookup by
-- run (and key) is one descent, not two, and the row is where the key is.
-- The (key, value) indexes then hold the table's key in place of a rowid, so a
-- metric-ordered search walks `latest_metrics_by_key` and finds each run's id
-- there; `is_nan` is in that index too, so the walk never leaves it.
-- SQLite only (`WITHOUT ROWID` is its clustering clause): a PostgreSQL table is
-- a heap plus its key's index whatever the DDL says, and it skips this one.
CREATE TABLE runs_v15 (
    run_uuid        TEXT NOT NULL PRIMARY KEY,
    name            TEXT NOT NULL,
    experiment_id   BIGINT NOT NULL REFERENCES experiments (experiment_id),
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT,
    artifact_uri    TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    deleted_time    BIGINT
) WITHOUT ROWID;
INSERT INTO runs_v15 (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri,
                      lifecycle_stage, deleted_time)
    SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage,
           deleted_time FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v15 RENAME TO runs;
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);

CREATE TABLE params_v15 (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO params_v15 (run_uuid, key, value) SELECT run_uuid, key, value FROM params;
DROP TABLE params;
ALTER TABLE params_v15 RENAME TO params;
CREATE INDEX params_by_key ON params (key, value);

CREATE TABLE tags_v15 (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO tags_v15 (run_uuid, key, value) SELECT run_uuid, key, value FROM tags;
DROP TABLE tags;
ALTER TABLE tags_v15 RENAME TO tags;
CREATE INDEX tags_by_key ON tags (key, value);

CREATE TABLE latest_metrics_v15 (
    run_uuid  TEXT NOT NULL REFERENCES runs (run_uuid),
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    SMALLINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_v15 (run_uuid, key, value, is_nan, timestamp, step)
    SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_v15 RENAME TO latest_metrics;
CREATE INDEX latest_metrics_by_key ON latest_metrics (key, is_nan, value);
