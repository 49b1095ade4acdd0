-- Metrics clustered by (run, key, step, timestamp, value, is_nan): one B-tree
-- instead of a rowid table plus an index (inserts touch one tree, the file
-- holds run and key once per row instead of twice), and MLflow's primary key,
-- so logging the exact same point twice keeps one (as MLflow's server does).
-- `WITHOUT ROWID` is SQLite's clustering clause; PostgreSQL has no such clause
-- (a table there is a heap plus its primary-key index) and drops it.
CREATE TABLE metrics_v4 (
    run_uuid       TEXT NOT NULL REFERENCES runs (run_uuid),
    key            TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         SMALLINT NOT NULL,
    timestamp      BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    model_id       TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_uuid, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;
INSERT INTO metrics_v4 (run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest)
    SELECT run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest FROM metrics WHERE TRUE
    ON CONFLICT DO NOTHING;
DROP TABLE metrics;
ALTER TABLE metrics_v4 RENAME TO metrics;
CREATE INDEX metrics_by_model ON metrics (model_id) WHERE model_id IS NOT NULL;
