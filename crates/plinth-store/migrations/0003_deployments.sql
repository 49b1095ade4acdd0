-- Deployments: what the serving layer serves. The variants are JSON (small,
-- read whole, validated by the domain before every write).
CREATE TABLE deployments (
    name          TEXT PRIMARY KEY,
    salt          TEXT NOT NULL,
    variants_json TEXT NOT NULL,
    shadow_json   TEXT,
    created_time  BIGINT NOT NULL,
    updated_time  BIGINT NOT NULL
);
