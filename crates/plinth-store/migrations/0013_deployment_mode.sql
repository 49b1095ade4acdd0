-- How a deployment's variants share its traffic: split (A/B by weight) or
-- interleave (two recommenders merged by team draft).
ALTER TABLE deployments ADD COLUMN mode TEXT NOT NULL DEFAULT 'split';
