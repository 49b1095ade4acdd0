-- Serving keys: tokens that call one deployment's inference endpoints only;
-- `scope` is that deployment's name (NULL for API tokens and sessions).
ALTER TABLE api_tokens ADD COLUMN scope TEXT;
