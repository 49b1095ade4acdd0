-- The context a run used a dataset in (the `mlflow.data.context` input tag)
-- gets its own column, so that `datasets.context` filters compare values
-- instead of matching a pattern over the serialized tags.
ALTER TABLE run_datasets ADD COLUMN context TEXT;
UPDATE run_datasets SET context = (
    SELECT json_extract(t.value, '$.value') FROM json_each(run_datasets.tags_json) t
    WHERE json_extract(t.value, '$.key') = 'mlflow.data.context'
    LIMIT 1
);
