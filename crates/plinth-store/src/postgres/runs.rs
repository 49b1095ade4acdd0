//! Runs, their params, tags and metrics, and run search, in PostgreSQL.

use std::collections::HashMap;

use super::Tx as Transaction;
use super::{exec, row_opt};
use plinth_core::experiments::{LifecycleStage, Tag};
use plinth_core::rules::{self, ParamWrite, missing, taken};
use plinth_core::runs::{
    Dataset, DatasetInput, DatasetSummary, Metric, ModelIo, Param, RUN_NAME_TAG, Run, RunData, RunInfo, RunInputs,
    RunStatus, RunUpdate,
};
use tokio_postgres::Row;

use super::experiments::{self, parse_id};
use super::{col, db, params, stored};
use crate::codec::stored_value;
use crate::plan::{self, Dialect, Sql, page_rest};
use crate::{Page, Result, RunSearch, codec};

/// As a macro, so that `concat!` builds static SQL (prepared once per connection) from it.
macro_rules! info_columns {
    () => {
        "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage"
    };
}
const INFO_COLUMNS: &str = info_columns!();

fn row_to_info(r: &Row) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: col(r, 0)?,
        run_name: col(r, 1)?,
        experiment_id: col::<i64>(r, 2)?.to_string(),
        user_id: col(r, 3)?,
        status: stored(r, 4, RunStatus::parse)?,
        start_time: col(r, 5)?,
        end_time: col(r, 6)?,
        artifact_uri: col(r, 7)?,
        lifecycle_stage: stored(r, 8, LifecycleStage::parse)?,
    })
}

/// `key, value, is_nan, timestamp, step` from column `first` on.
pub(crate) fn row_to_metric(r: &Row, first: usize) -> Result<Metric> {
    let is_nan: i16 = col(r, first + 2)?;
    let value: f64 = col(r, first + 1)?;
    Ok(Metric::new(
        col::<String>(r, first)?,
        if is_nan != 0 { f64::NAN } else { value },
        col(r, first + 3)?,
        col(r, first + 4)?,
    ))
}

pub(crate) async fn create(tx: &Transaction<'_>, info: &RunInfo, tags: &[Tag]) -> Result<Run> {
    experiments::get_active(tx, &info.experiment_id).await?;
    let exp_id = parse_id(&info.experiment_id)?;
    let n = tx
        .execute(
            "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri,
                               lifecycle_stage)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active') ON CONFLICT DO NOTHING",
            &[
                &info.run_id,
                &info.run_name,
                &exp_id,
                &info.user_id,
                &info.status.as_str(),
                &info.start_time,
                &info.end_time,
                &info.artifact_uri,
            ],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(taken::run(&info.run_id).into());
    }
    for tag in tags {
        upsert_tag(tx, &info.run_id, tag).await?;
    }
    get(tx, &info.run_id).await
}

async fn upsert_tag(tx: &Transaction<'_>, run_id: &str, tag: &Tag) -> Result<()> {
    exec(
        tx,
        "INSERT INTO tags (run_uuid, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
        &[&run_id, &tag.key, &tag.value],
    )
    .await
    .map_err(db)?;
    if tag.key == RUN_NAME_TAG {
        exec(tx, "UPDATE runs SET name = $1 WHERE run_uuid = $2", &[&tag.value, &run_id]).await.map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn get_info(tx: &Transaction<'_>, run_id: &str) -> Result<RunInfo> {
    let row = row_opt(tx, concat!("SELECT ", info_columns!(), " FROM runs r WHERE r.run_uuid = $1"), &[&run_id])
        .await
        .map_err(db)?;
    match row {
        Some(r) => row_to_info(&r),
        None => Err(missing::run(run_id).into()),
    }
}

async fn get_active_info(tx: &Transaction<'_>, run_id: &str) -> Result<RunInfo> {
    let info = get_info(tx, run_id).await?;
    rules::require_active_run(run_id, info.lifecycle_stage)?;
    Ok(info)
}

pub(crate) async fn get(tx: &Transaction<'_>, run_id: &str) -> Result<Run> {
    let info = get_info(tx, run_id).await?;
    let mut runs = load_runs(tx, vec![info]).await?;
    runs.pop().ok_or_else(|| missing::run(run_id).into())
}

/// Loads data, inputs and outputs for many runs with one query per table.
async fn load_runs(tx: &Transaction<'_>, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
    if infos.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = infos.iter().map(|i| i.run_id.clone()).collect();
    let index: HashMap<String, usize> = ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    let mut runs: Vec<Run> = infos
        .into_iter()
        .map(|info| Run { info, data: RunData::default(), inputs: RunInputs::default(), outputs: Vec::new() })
        .collect();
    let at = |row: &Row| -> Result<Option<usize>> { Ok(index.get(&col::<String>(row, 0)?).copied()) };
    for row in tx
        .query("SELECT run_uuid, key, value FROM params WHERE run_uuid = ANY($1) ORDER BY key", &[&ids])
        .await
        .map_err(db)?
    {
        if let Some(i) = at(&row)? {
            runs[i].data.params.push(Param { key: col(&row, 1)?, value: col(&row, 2)? });
        }
    }
    for row in tx
        .query("SELECT run_uuid, key, value FROM tags WHERE run_uuid = ANY($1) ORDER BY key", &[&ids])
        .await
        .map_err(db)?
    {
        if let Some(i) = at(&row)? {
            runs[i].data.tags.push(Tag { key: col(&row, 1)?, value: col(&row, 2)? });
        }
    }
    for row in tx
        .query(
            "SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid = ANY($1)
             ORDER BY key",
            &[&ids],
        )
        .await
        .map_err(db)?
    {
        if let Some(i) = at(&row)? {
            runs[i].data.metrics.push(row_to_metric(&row, 1)?);
        }
    }
    for row in tx
        .query(
            "SELECT rd.run_uuid, d.name, d.digest, d.source_type, d.source, d.schema_json, d.profile, rd.tags_json
             FROM run_datasets rd JOIN datasets d ON d.dataset_uuid = rd.dataset_uuid WHERE rd.run_uuid = ANY($1)
             ORDER BY d.name",
            &[&ids],
        )
        .await
        .map_err(db)?
    {
        if let Some(i) = at(&row)? {
            let tags_json: String = col(&row, 7)?;
            runs[i].inputs.datasets.push(DatasetInput {
                dataset: Dataset {
                    name: col(&row, 1)?,
                    digest: col(&row, 2)?,
                    source_type: col(&row, 3)?,
                    source: col(&row, 4)?,
                    schema: col(&row, 5)?,
                    profile: col(&row, 6)?,
                },
                tags: codec::decode_tags(&tags_json),
            });
        }
    }
    for row in tx
        .query("SELECT run_uuid, model_id, direction, step FROM run_models WHERE run_uuid = ANY($1)", &[&ids])
        .await
        .map_err(db)?
    {
        if let Some(i) = at(&row)? {
            let m = ModelIo { model_id: col(&row, 1)?, step: col(&row, 3)? };
            if col::<String>(&row, 2)? == "input" {
                runs[i].inputs.models.push(m);
            } else {
                runs[i].outputs.push(m);
            }
        }
    }
    Ok(runs)
}

pub(crate) async fn update(tx: &Transaction<'_>, run_id: &str, u: &RunUpdate, now: i64) -> Result<RunInfo> {
    let mut info = get_active_info(tx, run_id).await?;
    if let Some(status) = u.status {
        info.status = status;
        if u.end_time.is_none() && status.is_terminal() && info.end_time.is_none() {
            info.end_time = Some(now);
        }
    }
    if let Some(end) = u.end_time {
        info.end_time = Some(end);
    }
    if let Some(name) = &u.run_name {
        info.run_name = name.clone();
        upsert_tag(tx, run_id, &Tag::new(RUN_NAME_TAG, name.clone())).await?;
    }
    exec(
        tx,
        "UPDATE runs SET status = $1, end_time = $2, name = $3 WHERE run_uuid = $4",
        &[&info.status.as_str(), &info.end_time, &info.run_name, &run_id],
    )
    .await
    .map_err(db)?;
    Ok(info)
}

pub(crate) async fn set_lifecycle(tx: &Transaction<'_>, run_id: &str, stage: LifecycleStage, now: i64) -> Result<()> {
    let info = get_info(tx, run_id).await?;
    if stage == LifecycleStage::Active {
        experiments::get_active(tx, &info.experiment_id).await?;
    }
    let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
    exec(
        tx,
        "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3",
        &[&stage.as_str(), &deleted_time, &run_id],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn log_batch(
    tx: &Transaction<'_>,
    run_id: &str,
    metrics: &[Metric],
    params_: &[Param],
    tags: &[Tag],
) -> Result<()> {
    get_active_info(tx, run_id).await?;
    rules::check_param_batch(params_)?;
    for p in params_ {
        // Inserted unless the key is there; then the rule decides about the value logged before.
        let inserted = tx
            .execute(
                "INSERT INTO params (run_uuid, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&run_id, &p.key, &p.value],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            let row = tx
                .query_one("SELECT value FROM params WHERE run_uuid = $1 AND key = $2", &[&run_id, &p.key])
                .await
                .map_err(db)?;
            let old: String = col(&row, 0)?;
            match rules::param_write(run_id, p, Some(&old))? {
                ParamWrite::Insert | ParamWrite::Unchanged => {}
            }
        }
    }
    for t in tags {
        upsert_tag(tx, run_id, t).await?;
    }
    if !metrics.is_empty() {
        insert_metrics(tx, run_id, metrics).await?;
    }
    Ok(())
}

/// The columns of a metrics batch, as the arrays UNNEST takes: every point,
/// then the latest per key (MLflow's rule: the greatest (step, timestamp,
/// value), NaN below every number).
struct MetricColumns<'a> {
    keys: Vec<&'a str>,
    values: Vec<f64>,
    nans: Vec<i16>,
    times: Vec<i64>,
    steps: Vec<i64>,
    models: Vec<Option<&'a str>>,
    dataset_names: Vec<Option<&'a str>>,
    dataset_digests: Vec<Option<&'a str>>,
    latest_keys: Vec<&'a str>,
    latest_values: Vec<f64>,
    latest_nans: Vec<i16>,
    latest_times: Vec<i64>,
    latest_steps: Vec<i64>,
}

impl<'a> MetricColumns<'a> {
    fn of(metrics: &'a [Metric]) -> MetricColumns<'a> {
        let n = metrics.len();
        let mut c = MetricColumns {
            keys: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            nans: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            steps: Vec::with_capacity(n),
            models: Vec::with_capacity(n),
            dataset_names: Vec::with_capacity(n),
            dataset_digests: Vec::with_capacity(n),
            latest_keys: Vec::new(),
            latest_values: Vec::new(),
            latest_nans: Vec::new(),
            latest_times: Vec::new(),
            latest_steps: Vec::new(),
        };
        let mut latest: HashMap<&str, &Metric> = HashMap::new();
        for m in metrics {
            let (v, nan) = stored_value(m);
            c.keys.push(m.key.as_str());
            c.values.push(v);
            c.nans.push(nan);
            c.times.push(m.timestamp);
            c.steps.push(m.step);
            c.models.push(m.model_id.as_deref());
            c.dataset_names.push(m.dataset_name.as_deref());
            c.dataset_digests.push(m.dataset_digest.as_deref());
            match latest.get(m.key.as_str()) {
                Some(prev) if !m.is_later_than(prev) => {}
                _ => {
                    latest.insert(&m.key, m);
                }
            }
        }
        for m in latest.into_values() {
            let (v, nan) = stored_value(m);
            c.latest_keys.push(m.key.as_str());
            c.latest_values.push(v);
            c.latest_nans.push(nan);
            c.latest_times.push(m.timestamp);
            c.latest_steps.push(m.step);
        }
        c
    }
}

/// Every point, kept once (the exact same point logged again is kept once, as
/// MLflow does), and the latest per key merged with what is stored by one
/// conditional upsert, so concurrent batches on one run keep the true latest;
/// all of it in one statement, and only while the run `$1` is active. Its one
/// row says whether the run was.
const INSERT_METRICS: &str = "WITH run AS (SELECT 1 FROM runs WHERE run_uuid = $1 AND lifecycle_stage = 'active'),
     points AS (
         INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest)
         SELECT $1, * FROM UNNEST($2::text[], $3::float8[], $4::int2[], $5::int8[], $6::int8[], $7::text[],
                                  $8::text[], $9::text[])
         WHERE EXISTS (SELECT 1 FROM run)
         ON CONFLICT DO NOTHING),
     latest AS (
         INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step)
         SELECT $1, * FROM UNNEST($10::text[], $11::float8[], $12::int2[], $13::int8[], $14::int8[])
         WHERE EXISTS (SELECT 1 FROM run)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
             timestamp = excluded.timestamp, step = excluded.step
         WHERE (excluded.step, excluded.timestamp) > (latest_metrics.step, latest_metrics.timestamp)
            OR ((excluded.step, excluded.timestamp) = (latest_metrics.step, latest_metrics.timestamp)
                AND excluded.is_nan = 0 AND (latest_metrics.is_nan = 1 OR excluded.value > latest_metrics.value)))
     SELECT EXISTS (SELECT 1 FROM run)";

/// Runs [`INSERT_METRICS`] on `client` (a transaction or a bare connection, where the one statement is its own
/// transaction); `false` when the run is not there or not active (nothing written).
async fn write_metrics<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    run_id: &str,
    metrics: &[Metric],
) -> Result<bool> {
    let c = MetricColumns::of(metrics);
    let statement = client.prepare_cached(INSERT_METRICS).await.map_err(db)?;
    let row = client
        .query_one(
            &statement,
            &[
                &run_id,
                &c.keys,
                &c.values,
                &c.nans,
                &c.times,
                &c.steps,
                &c.models,
                &c.dataset_names,
                &c.dataset_digests,
                &c.latest_keys,
                &c.latest_values,
                &c.latest_nans,
                &c.latest_times,
                &c.latest_steps,
            ],
        )
        .await
        .map_err(db)?;
    col(&row, 0)
}

async fn insert_metrics(tx: &Transaction<'_>, run_id: &str, metrics: &[Metric]) -> Result<()> {
    if write_metrics(tx, run_id, metrics).await? {
        return Ok(());
    }
    // Not written: say why (the run checked active earlier in this transaction, so this is a race with a delete).
    get_active_info(tx, run_id).await.map(|_| ())
}

/// A batch of metrics alone, the hot path of `log-metric` and of training
/// loops: one statement, one round trip, no BEGIN/COMMIT. A run that is not
/// there or not active is looked up again to say why.
pub(crate) async fn log_metrics_only(
    client: &deadpool_postgres::Object,
    run_id: &str,
    metrics: &[Metric],
) -> Result<()> {
    if write_metrics(client, run_id, metrics).await? {
        return Ok(());
    }
    let statement = client
        .prepare_cached(concat!("SELECT ", info_columns!(), " FROM runs r WHERE r.run_uuid = $1"))
        .await
        .map_err(db)?;
    match client.query_opt(&statement, &[&run_id]).await.map_err(db)? {
        Some(r) => rules::require_active_run(run_id, row_to_info(&r)?.lifecycle_stage).map_err(Into::into),
        None => Err(missing::run(run_id).into()),
    }
}

/// Read, append and write back in one transaction, the tag row locked.
pub(crate) async fn append_to_tag_list(
    tx: &Transaction<'_>,
    run_id: &str,
    key: &str,
    entry: serde_json::Value,
) -> Result<()> {
    get_active_info(tx, run_id).await?;
    // Lock the run so concurrent appends to its tags take turns.
    exec(tx, "SELECT 1 FROM runs WHERE run_uuid = $1 FOR UPDATE", &[&run_id]).await.map_err(db)?;
    let old = tx
        .query_opt("SELECT value FROM tags WHERE run_uuid = $1 AND key = $2", &[&run_id, &key])
        .await
        .map_err(db)?
        .map(|r| col::<String>(&r, 0))
        .transpose()?;
    let tag = rules::appended_tag_list(key, old.as_deref(), entry)?;
    upsert_tag(tx, run_id, &tag).await
}

pub(crate) async fn delete_tag(tx: &Transaction<'_>, run_id: &str, key: &str) -> Result<()> {
    get_active_info(tx, run_id).await?;
    let n = exec(tx, "DELETE FROM tags WHERE run_uuid = $1 AND key = $2", &[&run_id, &key]).await.map_err(db)?;
    if n == 0 {
        return Err(missing::run_tag(run_id, key).into());
    }
    Ok(())
}

pub(crate) async fn log_inputs(
    tx: &Transaction<'_>,
    run_id: &str,
    datasets: &[DatasetInput],
    models: &[ModelIo],
) -> Result<()> {
    let info = get_active_info(tx, run_id).await?;
    let exp_id = parse_id(&info.experiment_id)?;
    for input in datasets {
        let d = &input.dataset;
        let id = plinth_core::ids::new_run_id();
        exec(tx,
            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema_json, profile)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (experiment_id, name, digest) DO NOTHING",
            &[&id, &exp_id, &d.name, &d.digest, &d.source_type, &d.source, &d.schema, &d.profile],
        )
        .await
        .map_err(db)?;
        let row = tx
            .query_one(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
                &[&exp_id, &d.name, &d.digest],
            )
            .await
            .map_err(db)?;
        let dataset_uuid: String = col(&row, 0)?;
        exec(tx,
            "INSERT INTO run_datasets (run_uuid, dataset_uuid, tags_json, context) VALUES ($1, $2, $3, $4)
             ON CONFLICT (run_uuid, dataset_uuid) DO UPDATE SET tags_json = excluded.tags_json, context = excluded.context",
            &[&run_id, &dataset_uuid, &codec::encode_tags(&input.tags), &input.context()],
        )
        .await
        .map_err(db)?;
    }
    insert_model_io(tx, run_id, models, "input").await
}

async fn insert_model_io(tx: &Transaction<'_>, run_id: &str, models: &[ModelIo], direction: &str) -> Result<()> {
    for m in models {
        exec(
            tx,
            "INSERT INTO run_models (run_uuid, model_id, direction, step) VALUES ($1, $2, $3, $4)
             ON CONFLICT (run_uuid, model_id, direction) DO UPDATE SET step = excluded.step",
            &[&run_id, &m.model_id, &direction, &m.step],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn log_outputs(tx: &Transaction<'_>, run_id: &str, models: &[ModelIo]) -> Result<()> {
    get_active_info(tx, run_id).await?;
    insert_model_io(tx, run_id, models, "output").await
}

pub(crate) async fn metric_history(
    tx: &Transaction<'_>,
    run_id: &str,
    key: &str,
    max_results: i64,
    offset: i64,
) -> Result<Page<Metric>> {
    get_info(tx, run_id).await?;
    let rows = tx
        .query(
            "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = $1 AND key = $2
             ORDER BY step, timestamp, value, is_nan LIMIT $3 OFFSET $4",
            &[&run_id, &key, &(max_results + 1), &offset],
        )
        .await
        .map_err(db)?;
    let mut items = rows.iter().map(|r| row_to_metric(r, 0)).collect::<Result<Vec<_>>>()?;
    let next_offset = page_rest(&mut items, max_results, offset);
    Ok(Page { items, next_offset })
}

pub(crate) async fn dataset_summaries(
    tx: &Transaction<'_>,
    experiment_ids: &[String],
    limit: usize,
) -> Result<Vec<DatasetSummary>> {
    let ids: Vec<i64> = experiment_ids.iter().filter_map(|id| id.trim().parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT DISTINCT d.experiment_id, d.name, d.digest, rd.context
             FROM datasets d JOIN run_datasets rd ON rd.dataset_uuid = d.dataset_uuid
             WHERE d.experiment_id = ANY($1) ORDER BY d.experiment_id, d.name, d.digest, rd.context LIMIT $2",
            &[&ids, &(limit as i64)],
        )
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(DatasetSummary {
                experiment_id: col::<i64>(r, 0)?.to_string(),
                name: col(r, 1)?,
                digest: col(r, 2)?,
                context: col(r, 3)?,
            })
        })
        .collect()
}

/// MLflow's sampling (see the trait): NTILE buckets, the first of each, the last always.
pub(crate) async fn sample_metric_history(
    tx: &Transaction<'_>,
    run_id: &str,
    key: &str,
    steps: Option<(i64, i64)>,
    max_points: i64,
) -> Result<Vec<Metric>> {
    get_info(tx, run_id).await?;
    let (lo, hi) = steps.unwrap_or((i64::MIN, i64::MAX));
    let max_points = max_points.clamp(1, i64::from(i32::MAX));
    let buckets = max_points as i32;
    let rows = tx
        .query(
            "SELECT key, value, is_nan, timestamp, step FROM (
                 SELECT key, value, is_nan, timestamp, step,
                        ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY step, timestamp, value, is_nan) AS rn
                 FROM (SELECT key, value, is_nan, timestamp, step,
                              NTILE($4) OVER (ORDER BY step, timestamp, value, is_nan) AS bucket
                       FROM metrics WHERE run_uuid = $1 AND key = $2 AND step BETWEEN $3 AND $5) b) r
             WHERE rn = 1 ORDER BY step, timestamp, value, is_nan",
            &[&run_id, &key, &lo, &buckets, &hi],
        )
        .await
        .map_err(db)?;
    let mut points = rows.iter().map(|r| row_to_metric(r, 0)).collect::<Result<Vec<_>>>()?;
    let last = tx
        .query_opt(
            "SELECT key, value, is_nan, timestamp, step FROM metrics
             WHERE run_uuid = $1 AND key = $2 AND step BETWEEN $3 AND $4
             ORDER BY step DESC, timestamp DESC, value DESC, is_nan DESC LIMIT 1",
            &[&run_id, &key, &lo, &hi],
        )
        .await
        .map_err(db)?;
    let last = last.map(|r| row_to_metric(&r, 0)).transpose()?;
    codec::keep_last_point(&mut points, last, max_points);
    Ok(points)
}

async fn query_infos(tx: &Transaction<'_>, sql: &Sql) -> Result<Vec<RunInfo>> {
    let rows = tx.query(&sql.numbered(), &params(sql)).await.map_err(db)?;
    rows.iter().map(row_to_info).collect()
}

/// Run search: the plan both backends share (see [`plan::RunPlan`]).
pub(crate) async fn search(tx: &Transaction<'_>, s: &RunSearch) -> Result<Page<Run>> {
    let plan = plan::run_plan(s, Dialect::Postgres)?;
    let limit = s.query.max_results + 1;
    let offset = s.query.offset;
    let mut infos = query_infos(tx, &plan.page(INFO_COLUMNS, limit, offset)).await?;
    if let Some(count) = plan.count_with_metric().filter(|_| (infos.len() as i64) < limit) {
        let row = tx.query_one(&count.numbered(), &params(&count)).await.map_err(db)?;
        let with_metric: i64 = col(&row, 0)?;
        let rest_limit = limit - infos.len() as i64;
        let rest_offset = (offset - with_metric).max(0);
        if let Some(rest) = plan.rest(INFO_COLUMNS, rest_limit, rest_offset) {
            infos.extend(query_infos(tx, &rest).await?);
        }
    }
    let next_offset = page_rest(&mut infos, s.query.max_results, offset);
    let items = load_runs(tx, infos).await?;
    Ok(Page { items, next_offset })
}
