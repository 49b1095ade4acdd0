//! Runs, their params, tags and metrics, and run search, in SQLite.

use std::collections::HashMap;

use plinth_core::experiments::{LifecycleStage, Tag};
use plinth_core::rules::{self, ParamWrite, missing, taken};
use plinth_core::runs::{
    Dataset, DatasetInput, DatasetSummary, Metric, ModelIo, Param, RUN_NAME_TAG, Run, RunData, RunInfo, RunInputs,
    RunStatus, RunUpdate,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::experiments::{self, parse_id};
use super::stored;
use crate::plan::{self, Dialect, Sql, page_rest};
use crate::{Page, Result, RunSearch, codec};

const INFO_COLUMNS: &str = "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunInfo> {
    let status: String = r.get(4)?;
    let stage: String = r.get(8)?;
    Ok(RunInfo {
        run_id: r.get(0)?,
        run_name: r.get(1)?,
        experiment_id: r.get::<_, i64>(2)?.to_string(),
        user_id: r.get(3)?,
        status: stored(4, RunStatus::parse(&status))?,
        start_time: r.get(5)?,
        end_time: r.get(6)?,
        artifact_uri: r.get(7)?,
        lifecycle_stage: stored(8, LifecycleStage::parse(&stage))?,
    })
}

pub(crate) fn create(conn: &Connection, info: &RunInfo, tags: &[Tag]) -> Result<Run> {
    experiments::get_active(conn, &info.experiment_id)?;
    let exp_id = parse_id(&info.experiment_id)?;
    let dup: Option<i64> =
        conn.query_row("SELECT 1 FROM runs WHERE run_uuid = ?1", [&info.run_id], |r| r.get(0)).optional()?;
    if dup.is_some() {
        return Err(taken::run(&info.run_id).into());
    }
    conn.execute(
        "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active')",
        params![
            info.run_id,
            info.run_name,
            exp_id,
            info.user_id,
            info.status.as_str(),
            info.start_time,
            info.end_time,
            info.artifact_uri
        ],
    )?;
    for tag in tags {
        upsert_tag(conn, &info.run_id, tag)?;
    }
    get(conn, &info.run_id)
}

fn upsert_tag(conn: &Connection, run_id: &str, tag: &Tag) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tags (run_uuid, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![run_id, tag.key, tag.value])?;
    if tag.key == RUN_NAME_TAG {
        conn.prepare_cached("UPDATE runs SET name = ?1 WHERE run_uuid = ?2")?.execute(params![tag.value, run_id])?;
    }
    Ok(())
}

pub(crate) fn get_info(conn: &Connection, run_id: &str) -> Result<RunInfo> {
    conn.prepare_cached(&format!("SELECT {INFO_COLUMNS} FROM runs r WHERE r.run_uuid = ?1"))?
        .query_row([run_id], row_to_info)
        .optional()?
        .ok_or_else(|| missing::run(run_id).into())
}

pub(crate) fn experiment_of(conn: &Connection, run_id: &str) -> Result<String> {
    conn.prepare_cached(crate::plan::RUN_EXPERIMENT)?
        .query_row([run_id], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|id| id.to_string())
        .ok_or_else(|| missing::run(run_id).into())
}

fn get_active_info(conn: &Connection, run_id: &str) -> Result<RunInfo> {
    let info = get_info(conn, run_id)?;
    rules::require_active_run(run_id, info.lifecycle_stage)?;
    Ok(info)
}

/// The cheap check on every logging write: the run exists and is active.
fn check_active(conn: &Connection, run_id: &str) -> Result<()> {
    let stage: Option<String> = conn
        .prepare_cached("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    match stage.as_deref() {
        None => Err(missing::run(run_id).into()),
        Some(stage) => Ok(rules::require_active_run(run_id, stored(0, LifecycleStage::parse(stage))?)?),
    }
}

pub(crate) fn get(conn: &Connection, run_id: &str) -> Result<Run> {
    let info = get_info(conn, run_id)?;
    Ok(load_runs(conn, vec![info])?.remove(0))
}

/// Loads data, inputs and outputs for many runs with one query per table.
fn load_runs(conn: &Connection, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
    if infos.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = infos.iter().map(|i| i.run_id.clone()).collect();
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut runs: Vec<Run> = infos
        .into_iter()
        .map(|info| Run { info, data: RunData::default(), inputs: RunInputs::default(), outputs: Vec::new() })
        .collect();
    let in_list = |prefix: &str, suffix: &str| {
        let mut sql = Sql::new(prefix);
        sql.list(ids.iter().cloned());
        sql.push(suffix);
        sql
    };
    // Each run's params, tags and metrics are put in key order below, a few
    // each, rather than by SQLite sorting the whole page's rows.
    let sql = in_list("SELECT run_uuid, key, value FROM params WHERE run_uuid IN (", ")");
    for row in conn.prepare_cached(&sql.text)?.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, String>(0)?, Param { key: r.get(1)?, value: r.get(2)? }))
    })? {
        let (id, p) = row?;
        if let Some(&i) = index.get(id.as_str()) {
            runs[i].data.params.push(p);
        }
    }
    let sql = in_list("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN (", ")");
    for row in conn.prepare_cached(&sql.text)?.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, String>(0)?, Tag { key: r.get(1)?, value: r.get(2)? }))
    })? {
        let (id, t) = row?;
        if let Some(&i) = index.get(id.as_str()) {
            runs[i].data.tags.push(t);
        }
    }
    let sql =
        in_list("SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid IN (", ")");
    for row in conn.prepare_cached(&sql.text)?.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, String>(0)?, row_to_metric(r, 1)?))
    })? {
        let (id, m) = row?;
        if let Some(&i) = index.get(id.as_str()) {
            runs[i].data.metrics.push(m);
        }
    }
    for run in &mut runs {
        run.data.params.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        run.data.tags.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        run.data.metrics.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    }
    let sql = in_list(
        "SELECT rd.run_uuid, d.name, d.digest, d.source_type, d.source, d.schema_json, d.profile, rd.tags_json
         FROM run_datasets rd JOIN datasets d ON d.dataset_uuid = rd.dataset_uuid WHERE rd.run_uuid IN (",
        ") ORDER BY d.name",
    );
    for row in conn.prepare_cached(&sql.text)?.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        let tags_json: String = r.get(7)?;
        Ok((
            r.get::<_, String>(0)?,
            DatasetInput {
                dataset: Dataset {
                    name: r.get(1)?,
                    digest: r.get(2)?,
                    source_type: r.get(3)?,
                    source: r.get(4)?,
                    schema: r.get(5)?,
                    profile: r.get(6)?,
                },
                tags: codec::decode_tags(&tags_json),
            },
        ))
    })? {
        let (id, d) = row?;
        if let Some(&i) = index.get(id.as_str()) {
            runs[i].inputs.datasets.push(d);
        }
    }
    let sql = in_list("SELECT run_uuid, model_id, direction, step FROM run_models WHERE run_uuid IN (", ")");
    for row in conn.prepare_cached(&sql.text)?.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?, ModelIo { model_id: r.get(1)?, step: r.get(3)? }))
    })? {
        let (id, direction, m) = row?;
        if let Some(&i) = index.get(id.as_str()) {
            if direction == "input" {
                runs[i].inputs.models.push(m);
            } else {
                runs[i].outputs.push(m);
            }
        }
    }
    Ok(runs)
}

pub(crate) fn row_to_metric(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Metric> {
    let is_nan: i64 = r.get(first + 2)?;
    let value: f64 = r.get(first + 1)?;
    Ok(Metric::new(
        r.get::<_, String>(first)?,
        if is_nan != 0 { f64::NAN } else { value },
        r.get(first + 3)?,
        r.get(first + 4)?,
    ))
}

pub(crate) fn update(conn: &Connection, run_id: &str, u: &RunUpdate, now: i64) -> Result<RunInfo> {
    let mut info = get_active_info(conn, run_id)?;
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
        upsert_tag(conn, run_id, &Tag::new(RUN_NAME_TAG, name.clone()))?;
    }
    conn.execute(
        "UPDATE runs SET status = ?1, end_time = ?2, name = ?3 WHERE run_uuid = ?4",
        params![info.status.as_str(), info.end_time, info.run_name, run_id],
    )?;
    Ok(info)
}

pub(crate) fn set_lifecycle(conn: &Connection, run_id: &str, stage: LifecycleStage, now: i64) -> Result<()> {
    let info = get_info(conn, run_id)?;
    if stage == LifecycleStage::Active {
        experiments::get_active(conn, &info.experiment_id)?;
    }
    let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?1, deleted_time = ?2 WHERE run_uuid = ?3",
        params![stage.as_str(), deleted_time, run_id],
    )?;
    Ok(())
}

pub(crate) fn log_batch(
    conn: &Connection,
    run_id: &str,
    metrics: &[Metric],
    params_: &[Param],
    tags: &[Tag],
) -> Result<()> {
    check_active(conn, run_id)?;
    rules::check_param_batch(params_)?;
    {
        let mut existing = conn.prepare_cached("SELECT value FROM params WHERE run_uuid = ?1 AND key = ?2")?;
        let mut insert = conn.prepare_cached("INSERT INTO params (run_uuid, key, value) VALUES (?1, ?2, ?3)")?;
        for p in params_ {
            let old: Option<String> = existing.query_row(params![run_id, p.key], |r| r.get(0)).optional()?;
            match rules::param_write(run_id, p, old.as_deref())? {
                ParamWrite::Insert => {
                    insert.execute(params![run_id, p.key, p.value])?;
                }
                ParamWrite::Unchanged => {}
            }
        }
    }
    for t in tags {
        upsert_tag(conn, run_id, t)?;
    }
    if !metrics.is_empty() {
        insert_metrics(conn, run_id, metrics)?;
    }
    Ok(())
}

fn insert_metrics(conn: &Connection, run_id: &str, metrics: &[Metric]) -> Result<()> {
    // The exact same point logged again is kept once, as MLflow does.
    let mut insert = conn.prepare_cached(
        "INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
    )?;
    for m in metrics {
        let (v, nan) = codec::stored_value(m);
        insert.execute(params![
            run_id,
            m.key,
            v,
            nan,
            m.timestamp,
            m.step,
            m.model_id,
            m.dataset_name,
            m.dataset_digest
        ])?;
    }
    // Keep only the latest value per key within the batch, then merge.
    let mut latest: HashMap<&str, &Metric> = HashMap::new();
    for m in metrics {
        match latest.get(m.key.as_str()) {
            Some(prev) if !m.is_later_than(prev) => {}
            _ => {
                latest.insert(&m.key, m);
            }
        }
    }
    let mut current = conn.prepare_cached(
        "SELECT key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid = ?1 AND key = ?2",
    )?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
         timestamp = excluded.timestamp, step = excluded.step",
    )?;
    for m in latest.into_values() {
        let prev = current.query_row(params![run_id, m.key], |r| row_to_metric(r, 0)).optional()?;
        if prev.is_none_or(|p| m.is_later_than(&p)) {
            let (v, nan) = codec::stored_value(m);
            upsert.execute(params![run_id, m.key, v, nan, m.timestamp, m.step])?;
        }
    }
    Ok(())
}

/// Read, append and write back inside the writer's one transaction.
pub(crate) fn append_to_tag_list(conn: &Connection, run_id: &str, key: &str, entry: serde_json::Value) -> Result<()> {
    check_active(conn, run_id)?;
    let old: Option<String> = conn
        .query_row("SELECT value FROM tags WHERE run_uuid = ?1 AND key = ?2", params![run_id, key], |r| r.get(0))
        .optional()?;
    let tag = rules::appended_tag_list(key, old.as_deref(), entry)?;
    log_batch(conn, run_id, &[], &[], &[tag])
}

pub(crate) fn delete_tag(conn: &Connection, run_id: &str, key: &str) -> Result<()> {
    get_active_info(conn, run_id)?;
    let n = conn.execute("DELETE FROM tags WHERE run_uuid = ?1 AND key = ?2", params![run_id, key])?;
    if n == 0 {
        return Err(missing::run_tag(run_id, key).into());
    }
    Ok(())
}

pub(crate) fn log_inputs(conn: &Connection, run_id: &str, datasets: &[DatasetInput], models: &[ModelIo]) -> Result<()> {
    let info = get_active_info(conn, run_id)?;
    let exp_id = parse_id(&info.experiment_id)?;
    for input in datasets {
        let d = &input.dataset;
        let existing: Option<String> = conn
            .query_row(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3",
                params![exp_id, d.name, d.digest],
                |r| r.get(0),
            )
            .optional()?;
        let dataset_uuid = match existing {
            Some(id) => id,
            None => {
                let id = plinth_core::ids::new_run_id();
                conn.execute(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema_json, profile)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![id, exp_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile],
                )?;
                id
            }
        };
        conn.execute(
            "INSERT INTO run_datasets (run_uuid, dataset_uuid, tags_json, context) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_uuid, dataset_uuid) DO UPDATE SET tags_json = excluded.tags_json, context = excluded.context",
            params![run_id, dataset_uuid, codec::encode_tags(&input.tags), input.context()],
        )?;
    }
    insert_model_io(conn, run_id, models, "input")
}

fn insert_model_io(conn: &Connection, run_id: &str, models: &[ModelIo], direction: &str) -> Result<()> {
    for m in models {
        conn.execute(
            "INSERT INTO run_models (run_uuid, model_id, direction, step) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_uuid, model_id, direction) DO UPDATE SET step = excluded.step",
            params![run_id, m.model_id, direction, m.step],
        )?;
    }
    Ok(())
}

pub(crate) fn log_outputs(conn: &Connection, run_id: &str, models: &[ModelIo]) -> Result<()> {
    get_active_info(conn, run_id)?;
    insert_model_io(conn, run_id, models, "output")
}

pub(crate) fn metric_history(
    conn: &Connection,
    run_id: &str,
    key: &str,
    max_results: i64,
    offset: i64,
) -> Result<Page<Metric>> {
    get_info(conn, run_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ?1 AND key = ?2
         ORDER BY step, timestamp, value, is_nan LIMIT ?3 OFFSET ?4",
    )?;
    let mut items: Vec<Metric> = stmt
        .query_map(params![run_id, key, max_results + 1, offset], |r| row_to_metric(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut items, max_results, offset);
    Ok(Page { items, next_offset })
}

pub(crate) fn dataset_summaries(
    conn: &Connection,
    experiment_ids: &[String],
    limit: usize,
) -> Result<Vec<DatasetSummary>> {
    let ids: Vec<i64> = experiment_ids.iter().filter_map(|id| id.trim().parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, rd.context
         FROM datasets d JOIN run_datasets rd ON rd.dataset_uuid = d.dataset_uuid
         WHERE d.experiment_id IN ({placeholders}) ORDER BY d.experiment_id, d.name, d.digest"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(ids.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
    })?;
    let mut out: Vec<DatasetSummary> = Vec::new();
    for row in rows {
        let (experiment_id, name, digest, context) = row?;
        let summary = DatasetSummary { experiment_id: experiment_id.to_string(), name, digest, context };
        if !out.contains(&summary) {
            out.push(summary);
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

pub(crate) fn sample_metric_history(
    conn: &Connection,
    run_id: &str,
    key: &str,
    steps: Option<(i64, i64)>,
    max_points: i64,
) -> Result<Vec<Metric>> {
    get_info(conn, run_id)?;
    let (lo, hi) = steps.unwrap_or((i64::MIN, i64::MAX));
    let max_points = max_points.max(1);
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, is_nan, timestamp, step FROM (
             SELECT key, value, is_nan, timestamp, step,
                    ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY step, timestamp, value, is_nan) AS rn
             FROM (SELECT key, value, is_nan, timestamp, step,
                          NTILE(?4) OVER (ORDER BY step, timestamp, value, is_nan) AS bucket
                   FROM metrics WHERE run_uuid = ?1 AND key = ?2 AND step BETWEEN ?3 AND ?5))
         WHERE rn = 1 ORDER BY step, timestamp, value, is_nan",
    )?;
    let mut rows: Vec<Metric> = stmt
        .query_map(params![run_id, key, lo, max_points, hi], |r| row_to_metric(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut last = conn.prepare_cached(
        "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ?1 AND key = ?2 AND step BETWEEN ?3 AND ?4
         ORDER BY step DESC, timestamp DESC, value DESC, is_nan DESC LIMIT 1",
    )?;
    let last: Option<Metric> =
        last.query_map(params![run_id, key, lo, hi], |r| row_to_metric(r, 0))?.next().transpose()?;
    codec::keep_last_point(&mut rows, last, max_points);
    Ok(rows)
}

fn query_infos(conn: &Connection, sql: &Sql) -> Result<Vec<RunInfo>> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let infos =
        stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), row_to_info)?.collect::<rusqlite::Result<_>>()?;
    Ok(infos)
}

/// Run search. When the first sort key is a metric (the leaderboard case),
/// runs that have it are read in index order of (key, value), so a page
/// costs about its own size rather than a scan of the experiment; runs
/// without the metric follow, as MLflow orders them.
pub(crate) fn search(conn: &Connection, s: &RunSearch) -> Result<Page<Run>> {
    let plan = plan::run_plan(s, Dialect::Sqlite)?;
    let limit = s.query.max_results + 1;
    let offset = s.query.offset;
    let mut infos = query_infos(conn, &plan.page(INFO_COLUMNS, limit, offset))?;
    if let Some(count) = plan.count_with_metric().filter(|_| (infos.len() as i64) < limit) {
        // Past the runs that have the metric: continue with those that do not.
        let with_metric: i64 =
            conn.prepare(&count.text)?.query_row(rusqlite::params_from_iter(count.params.iter()), |r| r.get(0))?;
        let rest_limit = limit - infos.len() as i64;
        let rest_offset = (offset - with_metric).max(0);
        if let Some(rest) = plan.rest(INFO_COLUMNS, rest_limit, rest_offset) {
            infos.extend(query_infos(conn, &rest)?);
        }
    }
    let next_offset = page_rest(&mut infos, s.query.max_results, offset);
    let mut items = Vec::with_capacity(infos.len());
    // Bounded IN lists: load in chunks.
    let mut rest = infos;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(500));
        items.extend(load_runs(conn, rest)?);
        rest = tail;
    }
    Ok(Page { items, next_offset })
}

#[cfg(test)]
mod tests {
    use plinth_core::experiments::ViewType;
    use plinth_core::query::RunQuery;
    use rusqlite::StatementStatus;

    use super::*;

    /// 60 runs: `m0` = i/60, `m1` = (i·37 mod 60)/60 (all distinct), `algo` a, b or c in turn; every
    /// seventh run has no `m1`, and run 5 a NaN one.
    fn seeded() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                      last_update_time) VALUES (1, 'e', 'a', 'active', 0, 0)",
        )
        .unwrap();
        for i in 0..60i64 {
            let id = format!("run{i:02}");
            conn.execute(
                "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri,
                                   lifecycle_stage) VALUES (?1, ?1, 1, 'u', 'FINISHED', ?2, 'a', 'active')",
                params![id, i % 4],
            )
            .unwrap();
            let m1 = if i == 5 { f64::NAN } else { ((i * 37) % 60) as f64 / 60.0 };
            let mut metrics = vec![Metric::new("m0", i as f64 / 60.0, 0, 0)];
            if i % 7 != 3 {
                metrics.push(Metric::new("m1", m1, 0, 0));
            }
            let algo = ["a", "b", "c"][(i % 3) as usize];
            log_batch(&conn, &id, &metrics, &[Param::new("algo", algo)], &[]).unwrap();
        }
        conn
    }

    fn leaderboard(max_results: i64, offset: i64) -> RunSearch {
        RunSearch {
            experiment_ids: vec!["1".into()],
            view: ViewType::ActiveOnly,
            query: RunQuery::parse(
                "metrics.m0 > 0.25 and params.algo = 'a'",
                &["metrics.m1 DESC".into()],
                max_results,
                offset,
            )
            .unwrap(),
        }
    }

    #[test]
    fn a_metric_ordered_search_pages_through_the_same_runs_as_a_brute_force_order() {
        let conn = seeded();
        // Brute force: runs with m0 > 0.25 and algo a; those with a (non-NaN) m1 by it, descending, then the rest
        // by start time descending, then id.
        let mut expected: Vec<(Option<i64>, i64, String)> = (0..60i64)
            .filter(|i| *i as f64 / 60.0 > 0.25 && i % 3 == 0)
            .map(|i| {
                let m1 = (i % 7 != 3 && i != 5).then_some((i * 37) % 60);
                (m1, i % 4, format!("run{i:02}"))
            })
            .collect();
        expected.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => y.cmp(&x).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => b.1.cmp(&a.1).then(a.2.cmp(&b.2)),
        });
        let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
        assert!(expected.len() > 8, "{expected:?}");
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let page = search(&conn, &leaderboard(4, offset)).unwrap();
            seen.extend(page.items.iter().map(|r| r.info.run_id.clone()));
            for run in &page.items {
                let keys: Vec<&str> = run.data.metrics.iter().map(|m| m.key.as_str()).collect();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                assert_eq!(keys, sorted, "a run's metrics come in key order");
                assert_eq!(run.data.params.len(), 1);
            }
            match page.next_offset {
                Some(next) => offset = next,
                None => break,
            }
        }
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_repeated_search_is_not_prepared_again() {
        let conn = seeded();
        for _ in 0..3 {
            assert_eq!(search(&conn, &leaderboard(4, 0)).unwrap().items.len(), 4);
        }
        // The same text gets the same cached statement, whose counters say how often SQLite re-planned it.
        let plan = plan::run_plan(&leaderboard(4, 0), Dialect::Sqlite).unwrap();
        let statement = conn.prepare_cached(&plan.page(INFO_COLUMNS, 5, 0).text).unwrap();
        assert_eq!(statement.get_status(StatementStatus::RePrepare), 0);
        assert!(statement.get_status(StatementStatus::VmStep) > 0, "the cached statement is the one that ran");
    }

    #[test]
    fn a_large_batch_stores_every_distinct_point_once() {
        let conn = seeded();
        let point = |i: i64| {
            let mut m =
                Metric::new(format!("k{}", i % 7), if i % 50 == 0 { f64::NAN } else { i as f64 * 0.5 }, i % 3, i);
            m.model_id = (i % 11 == 0).then(|| format!("m-{i}"));
            m.dataset_name = (i % 13 == 0).then(|| "train".to_string());
            m
        };
        // 1,037 points, some logged twice in the batch and some again in a second one.
        let mut batch: Vec<Metric> = (0..1037).map(|i| point(i % 1000)).collect();
        batch.reverse();
        log_batch(&conn, "run01", &batch, &[], &[]).unwrap();
        log_batch(&conn, "run01", &(990..1010).map(point).collect::<Vec<_>>(), &[], &[]).unwrap();
        let mut stored: Vec<String> = conn
            .prepare(
                "SELECT key, value, is_nan, timestamp, step, model_id, dataset_name FROM metrics
                 WHERE run_uuid = 'run01' AND key LIKE 'k%'",
            )
            .unwrap()
            .query_map([], |r| {
                let nan: i64 = r.get(2)?;
                let value: f64 = r.get(1)?;
                Ok(format!(
                    "{}|{}|{}|{}|{:?}|{:?}",
                    r.get::<_, String>(0)?,
                    if nan == 1 { "NaN".to_string() } else { value.to_string() },
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        stored.sort();
        let mut expected: Vec<String> = (0..1010)
            .map(point)
            .map(|m| {
                let value = if m.value.is_nan() { "NaN".to_string() } else { m.value.to_string() };
                format!("{}|{value}|{}|{}|{:?}|{:?}", m.key, m.timestamp, m.step, m.model_id, m.dataset_name)
            })
            .collect();
        expected.sort();
        assert_eq!(stored.len(), 1010);
        assert_eq!(stored, expected);
        // The latest per key is the one at the highest step (the step is i here).
        let latest: f64 = conn
            .query_row("SELECT value FROM latest_metrics WHERE run_uuid = 'run01' AND key = 'k0'", [], |r| r.get(0))
            .unwrap();
        let best = (0..1010).filter(|i| i % 7 == 0).max().unwrap();
        assert_eq!(latest, best as f64 * 0.5);
    }
}
