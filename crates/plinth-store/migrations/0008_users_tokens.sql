-- Who may sign in (with `--auth`): users with a password's argon2id PHC
-- string, and their bearer tokens (API tokens and UI sessions), kept as the
-- SHA-256 of the secret, which is shown once and never stored.
CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL,
    created_time  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_time BIGINT NOT NULL,
    expires_time BIGINT,
    revoked_time BIGINT
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_time);
