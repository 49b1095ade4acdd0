-- Jobs are claimed by one worker at a time under a lease that it renews while
-- the job runs; a worker that dies stops renewing and another takes the job
-- over. A cancel request reaches the worker through the row.
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
ALTER TABLE jobs ADD COLUMN cancel_requested SMALLINT NOT NULL DEFAULT 0;
