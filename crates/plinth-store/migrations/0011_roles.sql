-- Permissions in MLflow's basic-auth model: roles belong to a workspace and
-- hold grants (a resource type, a pattern — one resource's id or name, or
-- '*' — and a permission); users hold roles. A user's own grants live in a
-- personal role per workspace named '__user_<id>__'.
CREATE TABLE roles (
    id          BIGINT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    UNIQUE (workspace, name)
);

CREATE TABLE role_permissions (
    id               BIGINT PRIMARY KEY,
    role_id          BIGINT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_pattern TEXT NOT NULL,
    permission       TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);

CREATE INDEX role_permissions_by_resource ON role_permissions (resource_type, resource_pattern);

CREATE TABLE role_assignments (
    id      BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    role_id BIGINT NOT NULL,
    UNIQUE (user_id, role_id)
);

CREATE INDEX role_assignments_by_role ON role_assignments (role_id);
