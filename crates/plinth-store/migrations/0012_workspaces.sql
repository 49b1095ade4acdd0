-- plinth:foreign-keys-off
-- Workspaces (teams). Experiments are unique by name within a workspace; the
-- registry is keyed by (workspace, name) in every table (MLflow's layout);
-- deployments, jobs and the audit trail say which workspace they belong to.
-- SQLite cannot drop a key, so the keyed tables are rebuilt (its documented
-- twelve-step procedure: the runner turns foreign keys off around this
-- migration and checks them before it commits). PostgreSQL runs its own
-- variant (`postgres/mod.rs`), altering the keys in place.
CREATE TABLE workspaces (
    name                  TEXT PRIMARY KEY,
    description           TEXT,
    default_artifact_root TEXT,
    creation_time         BIGINT NOT NULL,
    last_update_time      BIGINT NOT NULL
);
INSERT INTO workspaces (name, description, creation_time, last_update_time)
    VALUES ('default', 'Default workspace for legacy resources', 0, 0);

CREATE TABLE experiments_v12 (
    experiment_id     BIGINT PRIMARY KEY,
    name              TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL,
    workspace         TEXT NOT NULL DEFAULT 'default',
    UNIQUE (workspace, name)
);
INSERT INTO experiments_v12 (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
    SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments;
DROP TABLE experiments;
ALTER TABLE experiments_v12 RENAME TO experiments;

CREATE TABLE registered_models_v12 (
    workspace         TEXT NOT NULL DEFAULT 'default',
    name              TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT,
    PRIMARY KEY (workspace, name)
);
INSERT INTO registered_models_v12 (name, creation_time, last_updated_time, description)
    SELECT name, creation_time, last_updated_time, description FROM registered_models;

CREATE TABLE registered_model_tags_v12 (
    workspace TEXT NOT NULL DEFAULT 'default',
    name      TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (workspace, name, key),
    FOREIGN KEY (workspace, name) REFERENCES registered_models_v12 (workspace, name)
);
INSERT INTO registered_model_tags_v12 (name, key, value) SELECT name, key, value FROM registered_model_tags;

CREATE TABLE model_versions_v12 (
    workspace         TEXT NOT NULL DEFAULT 'default',
    name              TEXT NOT NULL,
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
    PRIMARY KEY (workspace, name, version),
    FOREIGN KEY (workspace, name) REFERENCES registered_models_v12 (workspace, name)
);
INSERT INTO model_versions_v12 (name, version, creation_time, last_updated_time, description, user_id, current_stage,
                                source, run_id, run_link, status, status_message, model_id, storage_location)
    SELECT name, version, creation_time, last_updated_time, description, user_id, current_stage,
           source, run_id, run_link, status, status_message, model_id, storage_location FROM model_versions;

CREATE TABLE model_version_tags_v12 (
    workspace TEXT NOT NULL DEFAULT 'default',
    name      TEXT NOT NULL,
    version   BIGINT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (workspace, name, version, key)
);
INSERT INTO model_version_tags_v12 (name, version, key, value) SELECT name, version, key, value FROM model_version_tags;

CREATE TABLE registered_model_aliases_v12 (
    workspace TEXT NOT NULL DEFAULT 'default',
    name      TEXT NOT NULL,
    alias     TEXT NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (workspace, name, alias),
    FOREIGN KEY (workspace, name) REFERENCES registered_models_v12 (workspace, name)
);
INSERT INTO registered_model_aliases_v12 (name, alias, version) SELECT name, alias, version FROM registered_model_aliases;

DROP TABLE registered_model_aliases;
DROP TABLE model_version_tags;
DROP TABLE model_versions;
DROP TABLE registered_model_tags;
DROP TABLE registered_models;
ALTER TABLE registered_models_v12 RENAME TO registered_models;
ALTER TABLE registered_model_tags_v12 RENAME TO registered_model_tags;
ALTER TABLE model_versions_v12 RENAME TO model_versions;
ALTER TABLE model_version_tags_v12 RENAME TO model_version_tags;
ALTER TABLE registered_model_aliases_v12 RENAME TO registered_model_aliases;
CREATE INDEX model_versions_by_run ON model_versions (run_id);

ALTER TABLE deployments ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE audit_log ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
CREATE INDEX audit_log_by_workspace ON audit_log (workspace, seq);
