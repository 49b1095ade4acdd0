-- What each serving process has counted per deployment variant since it
-- started, published about once a second, so that every replica can show
-- the totals of all of them. Rows of processes gone quiet are ignored and,
-- after an hour, removed.
CREATE TABLE serving_counters (
    deployment       TEXT NOT NULL,
    variant          TEXT NOT NULL,
    replica          TEXT NOT NULL,
    requests         BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    fallbacks        BIGINT NOT NULL,
    latency_us_total BIGINT NOT NULL,
    updated_time     BIGINT NOT NULL,
    PRIMARY KEY (deployment, variant, replica)
);
