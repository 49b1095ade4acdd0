-- Long-running work (training) as persistent jobs that clients poll.
CREATE TABLE jobs (
    job_id        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    spec_json     TEXT NOT NULL,
    result_json   TEXT,
    error         TEXT,
    attempts      BIGINT NOT NULL,
    created_time  BIGINT NOT NULL,
    started_time  BIGINT,
    finished_time BIGINT
);
CREATE INDEX jobs_by_status ON jobs (status, created_time);
