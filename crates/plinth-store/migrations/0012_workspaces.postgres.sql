-- 0012_workspaces.sql as PostgreSQL runs it: the same tables and keys, the
-- keys altered in place (constraint names are PostgreSQL's defaults).
CREATE TABLE workspaces (
    name                  TEXT PRIMARY KEY,
    description           TEXT,
    default_artifact_root TEXT,
    creation_time         BIGINT NOT NULL,
    last_update_time      BIGINT NOT NULL
);
INSERT INTO workspaces (name, description, creation_time, last_update_time)
    VALUES ('default', 'Default workspace for legacy resources', 0, 0);

ALTER TABLE experiments ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE experiments DROP CONSTRAINT experiments_name_key;
ALTER TABLE experiments ADD CONSTRAINT experiments_workspace_name_key UNIQUE (workspace, name);

ALTER TABLE registered_model_tags DROP CONSTRAINT registered_model_tags_name_fkey;
ALTER TABLE model_versions DROP CONSTRAINT model_versions_name_fkey;
ALTER TABLE registered_model_aliases DROP CONSTRAINT registered_model_aliases_name_fkey;

ALTER TABLE registered_models ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE registered_models DROP CONSTRAINT registered_models_pkey;
ALTER TABLE registered_models ADD PRIMARY KEY (workspace, name);

ALTER TABLE registered_model_tags ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE registered_model_tags DROP CONSTRAINT registered_model_tags_pkey;
ALTER TABLE registered_model_tags ADD PRIMARY KEY (workspace, name, key);
ALTER TABLE registered_model_tags ADD FOREIGN KEY (workspace, name) REFERENCES registered_models (workspace, name);

ALTER TABLE model_versions ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE model_versions DROP CONSTRAINT model_versions_pkey;
ALTER TABLE model_versions ADD PRIMARY KEY (workspace, name, version);
ALTER TABLE model_versions ADD FOREIGN KEY (workspace, name) REFERENCES registered_models (workspace, name);

ALTER TABLE model_version_tags ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE model_version_tags DROP CONSTRAINT model_version_tags_pkey;
ALTER TABLE model_version_tags ADD PRIMARY KEY (workspace, name, version, key);

ALTER TABLE registered_model_aliases ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE registered_model_aliases DROP CONSTRAINT registered_model_aliases_pkey;
ALTER TABLE registered_model_aliases ADD PRIMARY KEY (workspace, name, alias);
ALTER TABLE registered_model_aliases ADD FOREIGN KEY (workspace, name) REFERENCES registered_models (workspace, name);

ALTER TABLE deployments ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
ALTER TABLE audit_log ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
CREATE INDEX audit_log_by_workspace ON audit_log (workspace, seq);
