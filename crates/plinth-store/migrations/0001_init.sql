-- Plinth metadata schema, version 1. Portable SQL: SQLite and PostgreSQL.
CREATE TABLE experiments (
    experiment_id     BIGINT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL
);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    run_uuid        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    experiment_id   BIGINT NOT NULL REFERENCES experiments (experiment_id),
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT,
    artifact_uri    TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    deleted_time    BIGINT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);

CREATE TABLE params (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX params_by_key ON params (key, value);

CREATE TABLE tags (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX tags_by_key ON tags (key, value);

-- Every logged value. NaN is kept as is_nan = 1 (SQL has no NaN).
CREATE TABLE metrics (
    run_uuid       TEXT NOT NULL REFERENCES runs (run_uuid),
    key            TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         SMALLINT NOT NULL,
    timestamp      BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    model_id       TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT
);
CREATE INDEX metrics_by_run_key ON metrics (run_uuid, key, step, timestamp);
CREATE INDEX metrics_by_model ON metrics (model_id) WHERE model_id IS NOT NULL;

-- The latest value per (run, key), by MLflow's (step, timestamp, value) rule;
-- what run data shows and what search filters and sorts on.
CREATE TABLE latest_metrics (
    run_uuid  TEXT NOT NULL REFERENCES runs (run_uuid),
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    SMALLINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX latest_metrics_by_key ON latest_metrics (key, value);

CREATE TABLE datasets (
    dataset_uuid  TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    source_type   TEXT NOT NULL,
    source        TEXT NOT NULL,
    schema_json   TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE run_datasets (
    run_uuid     TEXT NOT NULL REFERENCES runs (run_uuid),
    dataset_uuid TEXT NOT NULL REFERENCES datasets (dataset_uuid),
    tags_json    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
);

-- Models a run consumed (direction 'input') or produced ('output').
CREATE TABLE run_models (
    run_uuid  TEXT NOT NULL REFERENCES runs (run_uuid),
    model_id  TEXT NOT NULL,
    direction TEXT NOT NULL,
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id, direction)
);

CREATE TABLE logged_models (
    model_id          TEXT PRIMARY KEY,
    experiment_id     BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name              TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    model_type        TEXT,
    source_run_id     TEXT,
    status            TEXT NOT NULL,
    status_message    TEXT,
    deleted           SMALLINT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_time);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

-- Metrics of a logged model are the run metrics logged with its model_id.

CREATE TABLE registered_models (
    name              TEXT PRIMARY KEY,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT
);

CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL REFERENCES registered_models (name),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name              TEXT NOT NULL REFERENCES registered_models (name),
    version           BIGINT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT,
    user_id           TEXT,
    current_stage     TEXT NOT NULL,
    source            TEXT NOT NULL,
    run_id            TEXT,
    run_link          TEXT,
    status            TEXT NOT NULL,
    status_message    TEXT,
    model_id          TEXT,
    storage_location  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    name    TEXT NOT NULL,
    version BIGINT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);

CREATE TABLE registered_model_aliases (
    name    TEXT NOT NULL REFERENCES registered_models (name),
    alias   TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
