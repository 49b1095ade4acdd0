//! The SQL both backends run for searches, built once: text with `?`
//! placeholders plus the values to bind, in order (values never enter the
//! text). SQLite binds them as they are; PostgreSQL numbers the placeholders
//! first ([`Sql::numbered`]). The SQL is the portable subset both engines
//! share; where they differ (join order hints), a [`Dialect`] says which.

use plinth_core::query::{
    DatasetField, DatasetFilter, ExperimentClause, ExperimentSearch, ExperimentSortKey, KeyTest, LoggedModelAttribute,
    LoggedModelClause, LoggedModelSearch, LoggedModelSortKey, ModelVersionClause, ModelVersionQuery,
    ModelVersionSortKey, NumOp, RegisteredModelClause, RegisteredModelQuery, RegisteredModelSortKey, RunAttribute,
    RunClause, RunSearch, RunSortKey, TextMatch,
};

use crate::Result;

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Val {
    fn from(n: i64) -> Self {
        Val::Int(n)
    }
}

/// Where the two engines' SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Val>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql { text: text.into(), params: Vec::new() }
    }
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    pub fn bind(&mut self, v: Val) {
        self.params.push(v);
        self.text.push('?');
    }
    pub fn bind_str(&mut self, s: &str) {
        self.bind(Val::Text(s.to_string()));
    }
    pub fn bind_i64(&mut self, n: i64) {
        self.bind(Val::Int(n));
    }
    /// `?, ?, ?` for each item.
    /// The text with PostgreSQL's numbered placeholders (`$1`, `$2`, …).
    pub fn numbered(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 8);
        let mut n = 0;
        for c in self.text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }
    pub fn list(&mut self, items: impl IntoIterator<Item = String>) {
        let mut first = true;
        for item in items {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            self.bind(Val::Text(item));
        }
        if first {
            // An empty IN list matches nothing.
            self.text.push_str("NULL");
        }
    }
}

/// ` AND <column> <op> <value>` for a string test.
pub(crate) fn string_clause(sql: &mut Sql, column: &str, test: &TextMatch) {
    match test {
        TextMatch::Eq(s) | TextMatch::Ne(s) | TextMatch::Like(s) => {
            let op = match test {
                TextMatch::Eq(_) => "=",
                TextMatch::Ne(_) => "!=",
                _ => "LIKE",
            };
            sql.push(&format!(" AND {column} {op} "));
            sql.bind_str(s);
        }
        TextMatch::ILike(s) => {
            sql.push(&format!(" AND LOWER({column}) LIKE LOWER("));
            sql.bind_str(s);
            sql.push(")");
        }
        TextMatch::In(items) | TextMatch::NotIn(items) => {
            let op = if matches!(test, TextMatch::In(_)) { "IN" } else { "NOT IN" };
            sql.push(&format!(" AND {column} {op} ("));
            sql.list(items.iter().cloned());
            sql.push(")");
        }
    }
}

/// ` AND <column> <op> <n>` for a numeric comparison.
pub(crate) fn number_clause(sql: &mut Sql, column: &str, op: NumOp, value: Val) {
    sql.push(&format!(" AND {column} {} ", op.sql()));
    // A double compared with an integer column: typed, so PostgreSQL does
    // not take the parameter for the column's type.
    let real = matches!(value, Val::Real(_));
    if real {
        sql.push("CAST(");
    }
    sql.bind(value);
    if real {
        sql.push(" AS DOUBLE PRECISION)");
    }
}

/// Registry tag filters. As in MLflow's registry, `!=` and `NOT IN` also
/// match entities without the tag (clients exclude prompts that way).
fn tag_clause(sql: &mut Sql, from_where: &str, key: &str, test: &KeyTest) {
    let (exists, value) = match test {
        KeyTest::IsNull => ("NOT EXISTS", None),
        KeyTest::IsNotNull => ("EXISTS", None),
        KeyTest::Value(TextMatch::Ne(s)) => ("NOT EXISTS", Some(TextMatch::Eq(s.clone()))),
        KeyTest::Value(TextMatch::NotIn(v)) => ("NOT EXISTS", Some(TextMatch::In(v.clone()))),
        KeyTest::Value(m) => ("EXISTS", Some(m.clone())),
    };
    sql.push(&format!(" AND {exists} (SELECT 1 FROM {from_where} AND t.key = "));
    sql.bind_str(key);
    if let Some(value) = &value {
        string_clause(sql, "t.value", value);
    }
    sql.push(")");
}

/// ` ORDER BY <order> LIMIT <limit> OFFSET ?`. The limit is written into the
/// text, not bound: SQLite plans a query with its limit, so a bound limit
/// makes it prepare the statement again at every execution (measured: every
/// run search did), while a written one keeps the prepared statement for as
/// long as clients ask for the same page size. It is an integer of ours, never
/// text from a request; the offset, which changes from page to page, stays bound.
fn order_page(sql: &mut Sql, order: &[String], limit: i64, offset: i64) {
    sql.push(&format!(" ORDER BY {} LIMIT {limit} OFFSET ", order.join(", ")));
    sql.bind_i64(offset);
}

/// Trims the one-extra row fetched to know whether another page exists.
pub(crate) fn page_rest<T>(items: &mut Vec<T>, max_results: i64, offset: i64) -> Option<i64> {
    if items.len() as i64 > max_results {
        items.truncate(max_results as usize);
        Some(offset + max_results)
    } else {
        None
    }
}

// --- experiments and the registry ---

/// Keeps only the experiments a caller may read: numeric ids (a grant's
/// pattern that is no number names no experiment).
fn id_visibility(sql: &mut Sql, column: &str, visible: &plinth_core::access::Visible) {
    use plinth_core::access::Visible;
    let numbers = |ids: &[String]| ids.iter().filter_map(|i| i.parse::<i64>().ok()).collect::<Vec<_>>();
    let (ids, negate) = match visible {
        Visible::All => return,
        Visible::Only(ids) => (numbers(ids), false),
        Visible::AllBut(ids) if ids.is_empty() => return,
        Visible::AllBut(ids) => (numbers(ids), true),
    };
    if ids.is_empty() {
        if !negate {
            sql.push(" AND 1 = 0");
        }
        return;
    }
    sql.push(&format!(" AND {column} {}IN (", if negate { "NOT " } else { "" }));
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_i64(id);
    }
    sql.push(")");
}

/// Experiments matching `s`, a page and one more row.
pub(crate) fn experiment_search(s: &ExperimentSearch, columns: &str, workspace: &str) -> Sql {
    let mut sql = Sql::new(format!("SELECT {columns} FROM experiments e WHERE e.workspace = "));
    sql.bind_str(workspace);
    sql.push(" AND e.lifecycle_stage IN (");
    sql.list(s.view.stages().iter().map(|s| s.to_string()));
    sql.push(")");
    for clause in &s.query.filter {
        match clause {
            ExperimentClause::Visible(visible) => id_visibility(&mut sql, "e.experiment_id", visible),
            ExperimentClause::Name(test) => string_clause(&mut sql, "e.name", test),
            ExperimentClause::CreationTime(op, n) => number_clause(&mut sql, "e.creation_time", *op, (*n).into()),
            ExperimentClause::LastUpdateTime(op, n) => number_clause(&mut sql, "e.last_update_time", *op, (*n).into()),
            ExperimentClause::Tag { key, test } => {
                sql.push(
                    " AND EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.key = ",
                );
                sql.bind_str(key);
                string_clause(&mut sql, "t.value", test);
                sql.push(")");
            }
        }
    }
    let mut order = Vec::new();
    for o in &s.query.order_by {
        let col = match o.key {
            ExperimentSortKey::Name => "e.name",
            ExperimentSortKey::ExperimentId => "e.experiment_id",
            ExperimentSortKey::CreationTime => "e.creation_time",
            ExperimentSortKey::LastUpdateTime => "e.last_update_time",
        };
        order.push(format!("{col} {}", if o.ascending { "ASC" } else { "DESC" }));
    }
    order.push("e.creation_time DESC".into());
    order.push("e.experiment_id ASC".into());
    order_page(&mut sql, &order, s.query.max_results + 1, s.query.offset);
    sql
}

/// Names of the registered models matching `q`, a page and one more.
pub(crate) fn registered_model_search(q: &RegisteredModelQuery, workspace: &str) -> Sql {
    let mut sql = Sql::new("SELECT m.name FROM registered_models m WHERE m.workspace = ");
    sql.bind_str(workspace);
    for c in &q.filter {
        match c {
            RegisteredModelClause::Name(test) => string_clause(&mut sql, "m.name", test),
            RegisteredModelClause::Tag { key, test } => tag_clause(
                &mut sql,
                "registered_model_tags t WHERE t.workspace = m.workspace AND t.name = m.name",
                key,
                test,
            ),
        }
    }
    let mut order = Vec::new();
    for o in &q.order_by {
        let col = match o.key {
            RegisteredModelSortKey::Name => "m.name",
            RegisteredModelSortKey::CreationTime => "m.creation_time",
            RegisteredModelSortKey::LastUpdatedTime => "m.last_updated_time",
        };
        order.push(format!("{col} {}", if o.ascending { "ASC" } else { "DESC" }));
    }
    order.push("m.name ASC".into());
    order_page(&mut sql, &order, q.max_results + 1, q.offset);
    sql
}

/// (name, version) of the model versions matching `q`, a page and one more.
pub(crate) fn model_version_search(q: &ModelVersionQuery, workspace: &str) -> Sql {
    let mut sql = Sql::new("SELECT v.name, v.version FROM model_versions v WHERE v.workspace = ");
    sql.bind_str(workspace);
    for c in &q.filter {
        match c {
            ModelVersionClause::Name(test) => string_clause(&mut sql, "v.name", test),
            ModelVersionClause::RunId(test) => string_clause(&mut sql, "v.run_id", test),
            ModelVersionClause::Source(test) => string_clause(&mut sql, "v.source", test),
            ModelVersionClause::ModelId(test) => string_clause(&mut sql, "v.model_id", test),
            ModelVersionClause::Version(op, n) => number_clause(&mut sql, "v.version", *op, (*n).into()),
            ModelVersionClause::Tag { key, test } => tag_clause(
                &mut sql,
                "model_version_tags t WHERE t.workspace = v.workspace AND t.name = v.name AND t.version = v.version",
                key,
                test,
            ),
        }
    }
    let mut order = Vec::new();
    for o in &q.order_by {
        let col = match o.key {
            ModelVersionSortKey::Name => "v.name",
            ModelVersionSortKey::Version => "v.version",
            ModelVersionSortKey::CreationTime => "v.creation_time",
            ModelVersionSortKey::LastUpdatedTime => "v.last_updated_time",
        };
        order.push(format!("{col} {}", if o.ascending { "ASC" } else { "DESC" }));
    }
    order.push("v.name ASC".into());
    order.push("v.version DESC".into());
    order_page(&mut sql, &order, q.max_results + 1, q.offset);
    sql
}

// --- logged models ---

/// The SQL column of a logged-model attribute.
fn column(attribute: LoggedModelAttribute) -> &'static str {
    match attribute {
        LoggedModelAttribute::ModelId => "m.model_id",
        LoggedModelAttribute::Name => "m.name",
        LoggedModelAttribute::ModelType => "m.model_type",
        LoggedModelAttribute::Status => "m.status",
        LoggedModelAttribute::SourceRunId => "m.source_run_id",
        // Stored as an integer; compared as text, like the wire does.
        LoggedModelAttribute::ExperimentId => "CAST(m.experiment_id AS TEXT)",
        LoggedModelAttribute::ArtifactLocation => "m.artifact_location",
        LoggedModelAttribute::CreationTimestamp => "m.creation_time",
        LoggedModelAttribute::LastUpdatedTimestamp => "m.last_updated_time",
    }
}

/// ` AND (dataset_name = ? [AND dataset_digest = ?] OR ...)`
fn dataset_condition(sql: &mut Sql, datasets: &[DatasetFilter]) {
    if datasets.is_empty() {
        return;
    }
    sql.push(" AND (");
    for (i, d) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(dataset_name = ");
        sql.bind_str(&d.name);
        if let Some(digest) = &d.digest {
            sql.push(" AND dataset_digest = ");
            sql.bind_str(digest);
        }
        sql.push(")");
    }
    sql.push(")");
}

fn filter_clause(sql: &mut Sql, clause: &LoggedModelClause, datasets: &[DatasetFilter]) {
    match clause {
        LoggedModelClause::Text { attribute, test } => string_clause(sql, column(*attribute), test),
        LoggedModelClause::Time { attribute, op, value } => {
            number_clause(sql, column(*attribute), *op, Val::Real(*value))
        }
        LoggedModelClause::Metric { key, op, value } => {
            sql.push(" AND m.model_id IN (SELECT model_id FROM metrics WHERE model_id IS NOT NULL AND key = ");
            sql.bind_str(key);
            sql.push(" AND is_nan = 0");
            number_clause(sql, "value", *op, Val::Real(*value));
            dataset_condition(sql, datasets);
            sql.push(")");
        }
        LoggedModelClause::Param { key, test } | LoggedModelClause::Tag { key, test } => {
            let table = if matches!(clause, LoggedModelClause::Param { .. }) {
                "logged_model_params"
            } else {
                "logged_model_tags"
            };
            sql.push(&format!(" AND m.model_id IN (SELECT model_id FROM {table} WHERE key = "));
            sql.bind_str(key);
            // `string_clause` opens with ` AND value ...`.
            string_clause(sql, "value", test);
            sql.push(")");
        }
    }
}

/// Logged models matching `q` (the columns given, of `m`), a page and one more row.
pub(crate) fn logged_model_search(q: &LoggedModelSearch, columns: &str) -> Sql {
    let cols = columns.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let mut sql = Sql::new(format!("SELECT {cols} FROM logged_models m"));
    // One LEFT JOIN per metric sort key: the latest value per model, as
    // MLflow picks it (newest timestamp, then step).
    for (i, order) in q.order_by.iter().enumerate() {
        let LoggedModelSortKey::Metric(metric) = &order.key else { continue };
        sql.push(
            " LEFT JOIN (SELECT model_id, value FROM (SELECT model_id, value, ROW_NUMBER() OVER \
             (PARTITION BY model_id ORDER BY timestamp DESC, step DESC, run_uuid) AS rn \
             FROM metrics WHERE model_id IS NOT NULL AND is_nan = 0 AND key = ",
        );
        sql.bind_str(metric);
        if let Some(d) = &order.dataset {
            dataset_condition(&mut sql, std::slice::from_ref(d));
        }
        sql.push(&format!(") AS latest WHERE rn = 1) ob{i} ON ob{i}.model_id = m.model_id"));
    }
    // Only the experiments asked for (none: nothing, as MLflow's store answers).
    sql.push(" WHERE m.deleted = 0 AND m.experiment_id IN (");
    if q.experiment_ids.is_empty() {
        sql.push("NULL");
    }
    for (i, id) in q.experiment_ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_i64(id.trim().parse::<i64>().unwrap_or(-1));
    }
    sql.push(")");
    for clause in &q.filter {
        filter_clause(&mut sql, clause, &q.datasets);
    }
    if !q.datasets.is_empty() && !q.filter.iter().any(|c| matches!(c, LoggedModelClause::Metric { .. })) {
        sql.push(" AND m.model_id IN (SELECT model_id FROM metrics WHERE model_id IS NOT NULL");
        dataset_condition(&mut sql, &q.datasets);
        sql.push(")");
    }

    let mut order = Vec::new();
    for (i, o) in q.order_by.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let col = match &o.key {
            LoggedModelSortKey::Metric(_) => format!("ob{i}.value"),
            LoggedModelSortKey::Attribute(a) => column(*a).to_string(),
        };
        order.push(format!("({col} IS NULL) ASC, {col} {dir}"));
    }
    let sorts_by = |a| q.order_by.iter().any(|o| o.key == LoggedModelSortKey::Attribute(a));
    if !sorts_by(LoggedModelAttribute::CreationTimestamp) {
        order.push("m.creation_time DESC".into());
    }
    if !sorts_by(LoggedModelAttribute::ModelId) {
        order.push("m.model_id ASC".into());
    }
    order_page(&mut sql, &order, q.max_results + 1, q.offset);
    sql
}

// --- runs ---

fn attribute_column(attribute: RunAttribute) -> &'static str {
    match attribute {
        RunAttribute::RunId => "r.run_uuid",
        RunAttribute::RunName => "r.name",
        RunAttribute::Status => "r.status",
        RunAttribute::UserId => "r.user_id",
        RunAttribute::ArtifactUri => "r.artifact_uri",
        RunAttribute::LifecycleStage => "r.lifecycle_stage",
        RunAttribute::ExperimentId => "r.experiment_id",
        RunAttribute::StartTime => "r.start_time",
        RunAttribute::EndTime => "r.end_time",
    }
}

/// The parts of a run search. When the first sort key is a metric (the
/// leaderboard case), runs that have it are read in index order of
/// (key, value), so a page costs about its own size rather than a scan of the
/// experiment; runs without the metric follow, as MLflow orders them. A
/// backend runs [`RunPlan::page`]; when it returns fewer rows than asked and
/// [`RunPlan::metric_first`] is set, [`RunPlan::count_with_metric`] and then
/// [`RunPlan::rest`] for the runs without the metric.
pub(crate) struct RunPlan {
    dialect: Dialect,
    /// `LEFT JOIN`s for sort keys (with their bound keys).
    joins: Sql,
    /// ` AND ...` conditions after the experiment and lifecycle filter.
    filters: Sql,
    /// The same, tied to the metric index's `o0.run_uuid` (metric-first queries).
    metric_filters: Sql,
    exp_ids: Vec<Val>,
    stages: Vec<String>,
    /// ORDER BY terms, the first sort key's included.
    order: Vec<String>,
    /// The first sort key when it is a metric: (key, ascending).
    pub metric_first: Option<(String, bool)>,
}

/// A run search's filter as ` AND ...` conditions, each run-table condition
/// tied to the run by `run` (the column that holds the candidate's id).
fn run_filters(filter: &[RunClause], run: &str) -> Sql {
    let mut sql = Sql::new("");
    for c in filter {
        match c {
            RunClause::Metric { key, op, value } => {
                sql.push(&format!(
                    " AND EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = {run} AND m.is_nan = 0 AND m.key = "
                ));
                sql.bind_str(key);
                number_clause(&mut sql, "m.value", *op, Val::Real(*value));
                sql.push(")");
            }
            RunClause::Param { key, test } | RunClause::Tag { key, test } => {
                let table = if matches!(c, RunClause::Param { .. }) { "params" } else { "tags" };
                let negate = *test == KeyTest::IsNull;
                sql.push(&format!(
                    " AND {}EXISTS (SELECT 1 FROM {table} p WHERE p.run_uuid = {run} AND p.key = ",
                    if negate { "NOT " } else { "" }
                ));
                sql.bind_str(key);
                if let KeyTest::Value(test) = test {
                    string_clause(&mut sql, "p.value", test);
                }
                sql.push(")");
            }
            RunClause::Text { attribute, test } => string_clause(&mut sql, attribute_column(*attribute), test),
            RunClause::Time { attribute, op, value } => {
                number_clause(&mut sql, attribute_column(*attribute), *op, Val::Int(*value))
            }
            RunClause::Dataset { field, test } => {
                sql.push(&format!(
                    " AND EXISTS (SELECT 1 FROM run_datasets rd JOIN datasets d ON d.dataset_uuid = rd.dataset_uuid \
                     WHERE rd.run_uuid = {run}"
                ));
                let column = match field {
                    DatasetField::Name => "d.name",
                    DatasetField::Digest => "d.digest",
                    DatasetField::Context => "rd.context",
                };
                string_clause(&mut sql, column, test);
                sql.push(")");
            }
        }
    }
    sql
}

pub(crate) fn run_plan(s: &RunSearch, dialect: Dialect) -> Result<RunPlan> {
    let mut exp_ids = Vec::new();
    for id in &s.experiment_ids {
        match id.trim().parse::<i64>() {
            Ok(n) => exp_ids.push(Val::Int(n)),
            Err(_) => return Err(plinth_core::Error::invalid(format!("Invalid experiment id '{id}'")).into()),
        }
    }
    // Sort keys become LEFT JOINs so that runs without the key sort last.
    let mut joins = Sql::new("");
    let mut order = Vec::new();
    let mut metric_first = None;
    for (i, o) in s.query.order_by.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let expr = match &o.key {
            RunSortKey::Metric(key) if i == 0 => {
                // Served from the (key, value) index: see `search`.
                metric_first = Some((key.clone(), o.ascending));
                order.push(format!("o0.value {dir}"));
                continue;
            }
            RunSortKey::Metric(key) => {
                joins.push(&format!(
                    " LEFT JOIN latest_metrics o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.is_nan = 0 AND o{i}.key = "
                ));
                joins.bind_str(key);
                format!("o{i}.value")
            }
            RunSortKey::Param(key) | RunSortKey::Tag(key) => {
                let table = if matches!(o.key, RunSortKey::Param(_)) { "params" } else { "tags" };
                joins.push(&format!(" LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = "));
                joins.bind_str(key);
                format!("o{i}.value")
            }
            RunSortKey::Attribute(a) => attribute_column(*a).to_string(),
        };
        order.push(format!("{expr} IS NULL, {expr} {dir}"));
    }
    order.push("r.start_time DESC".into());
    order.push("r.run_uuid ASC".into());

    // Walking the metric's index, a candidate's id is in the index entry: the
    // per-run conditions are tied to it there, so SQLite tests them before it
    // looks the run up (it tests a condition as soon as its tables are read)
    // and reads only the runs that pass.
    let filters = run_filters(&s.query.filter, "r.run_uuid");
    let metric_filters = run_filters(&s.query.filter, "o0.run_uuid");
    Ok(RunPlan {
        dialect,
        joins,
        filters,
        metric_filters,
        exp_ids,
        stages: s.view.stages().iter().map(|s| s.to_string()).collect(),
        order,
        metric_first,
    })
}

impl RunPlan {
    /// The first query: `columns` of `runs r`, a page of `limit` from `offset`.
    pub fn page(&self, columns: &str, limit: i64, offset: i64) -> Sql {
        match &self.metric_first {
            None => {
                let sql = self.select(columns, "runs r", &self.filters, |_| {});
                self.paged(sql, &self.order, limit, offset)
            }
            Some((key, _)) => {
                let sql =
                    self.select(columns, self.metric_from(), &self.metric_filters, |sql| self.with_metric(sql, key));
                self.paged(sql, &self.order, limit, offset)
            }
        }
    }

    /// How many runs have the first sort key's metric (metric-first only).
    pub fn count_with_metric(&self) -> Option<Sql> {
        let (key, _) = self.metric_first.as_ref()?;
        Some(self.select("COUNT(*)", self.metric_from(), &self.metric_filters, |sql| self.with_metric(sql, key)))
    }

    /// After the runs with the metric: those without it, `limit` from `offset`.
    pub fn rest(&self, columns: &str, limit: i64, offset: i64) -> Option<Sql> {
        let (key, _) = self.metric_first.as_ref()?;
        let without = |sql: &mut Sql| {
            sql.push(
                " AND NOT EXISTS (SELECT 1 FROM latest_metrics x WHERE x.run_uuid = r.run_uuid AND x.is_nan = 0 \
                 AND x.key = ",
            );
            sql.bind_str(key);
            sql.push(")");
        };
        let sql = self.select(columns, "runs r", &self.filters, without);
        Some(self.paged(sql, &self.order[1..], limit, offset))
    }

    fn metric_from(&self) -> &'static str {
        match self.dialect {
            // CROSS JOIN fixes the join order in SQLite: walk the (key, value) index first.
            Dialect::Sqlite => "latest_metrics o0 CROSS JOIN runs r ON r.run_uuid = o0.run_uuid",
            Dialect::Postgres => "latest_metrics o0 JOIN runs r ON r.run_uuid = o0.run_uuid",
        }
    }

    fn with_metric(&self, sql: &mut Sql, key: &str) {
        sql.push(" AND o0.key = ");
        sql.bind_str(key);
        sql.push(" AND o0.is_nan = 0");
    }

    /// `SELECT <what> FROM <from> <joins> WHERE <extra> <experiments> <filters>`.
    fn select(&self, what: &str, from: &str, filters: &Sql, extra: impl FnOnce(&mut Sql)) -> Sql {
        let mut sql = Sql::new(format!("SELECT {what} FROM {from}"));
        sql.text.push_str(&self.joins.text);
        sql.params.extend(self.joins.params.iter().cloned());
        sql.push(" WHERE 1 = 1");
        extra(&mut sql);
        sql.push(" AND r.experiment_id IN (");
        if self.exp_ids.is_empty() {
            sql.push("NULL");
        }
        for (i, v) in self.exp_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(v.clone());
        }
        sql.push(") AND r.lifecycle_stage IN (");
        sql.list(self.stages.iter().cloned());
        sql.push(")");
        sql.text.push_str(&filters.text);
        sql.params.extend(filters.params.iter().cloned());
        sql
    }

    fn paged(&self, mut sql: Sql, order: &[String], limit: i64, offset: i64) -> Sql {
        order_page(&mut sql, order, limit, offset);
        sql
    }
}

/// One process's counters for one variant, replacing what it published before
/// (the same text on both backends; `?` placeholders, numbered for PostgreSQL).
pub(crate) const UPSERT_COUNTERS: &str = "INSERT INTO serving_counters
     (deployment, variant, replica, requests, errors, fallbacks, latency_us_total, updated_time)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (deployment, variant, replica) DO UPDATE SET requests = excluded.requests,
         errors = excluded.errors, fallbacks = excluded.fallbacks,
         latency_us_total = excluded.latency_us_total, updated_time = excluded.updated_time";

pub(crate) const SELECT_COUNTERS: &str = "SELECT deployment, variant, replica, requests, errors, fallbacks,
     latency_us_total, updated_time FROM serving_counters WHERE deployment = ?1 AND updated_time >= ?2
     ORDER BY variant, replica";

/// Counters nobody has published for this long are removed.
pub(crate) const COUNTERS_KEPT_MS: i64 = 3_600_000;

// Users and tokens: the same text on both backends (`?` placeholders,
// numbered for PostgreSQL). Token rows come first in a join, users after.
pub(crate) const SELECT_USER_BY_NAME: &str =
    "SELECT id, username, password_hash, is_admin, created_time FROM users WHERE username = ?1";
pub(crate) const SELECT_USER_BY_ID: &str =
    "SELECT id, username, password_hash, is_admin, created_time FROM users WHERE id = ?1";
pub(crate) const LIST_USERS: &str =
    "SELECT id, username, password_hash, is_admin, created_time FROM users ORDER BY username";
pub(crate) const NEXT_USER_ID: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM users";
pub(crate) const INSERT_USER: &str =
    "INSERT INTO users (id, username, password_hash, is_admin, created_time) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(crate) const UPDATE_USER: &str = "UPDATE users SET password_hash = COALESCE(?2, password_hash),
     is_admin = COALESCE(?3, is_admin) WHERE username = ?1";
pub(crate) const DELETE_USER_TOKENS: &str = "DELETE FROM api_tokens WHERE user_id = ?1";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = ?1";
pub(crate) const INSERT_TOKEN: &str = "INSERT INTO api_tokens
     (id, user_id, name, kind, secret_hash, created_time, expires_time, revoked_time, scope)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// The columns of a token, in [`ApiToken`](plinth_core::auth::ApiToken)'s order; [`TOKEN_COLUMNS`] many.
pub(crate) const FIND_TOKEN: &str = "SELECT t.id, t.user_id, t.name, t.kind, t.secret_hash, t.created_time,
     t.expires_time, t.revoked_time, t.scope, u.id, u.username, u.password_hash, u.is_admin, u.created_time
     FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_hash = ?1";
pub(crate) const TOKEN_COLUMNS: usize = 9;
pub(crate) const LIST_TOKENS: &str = "SELECT id, user_id, name, kind, secret_hash, created_time, expires_time,
     revoked_time, scope FROM api_tokens WHERE user_id = ?1 ORDER BY created_time DESC, id";
pub(crate) const GET_TOKEN: &str = "SELECT id, user_id, name, kind, secret_hash, created_time, expires_time,
     revoked_time, scope FROM api_tokens WHERE id = ?1";
pub(crate) const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked_time = COALESCE(revoked_time, ?2) WHERE id = ?1";
/// Sessions past their end are of no use to anyone: removed when a new one is made.
pub(crate) const DELETE_ENDED_SESSIONS: &str =
    "DELETE FROM api_tokens WHERE kind = 'session' AND expires_time IS NOT NULL AND expires_time < ?1";

// The audit trail. Appended with the next `seq` in the same statement: the
// SQLite backend has one writer, the PostgreSQL one holds a lock while it
// appends, so `seq` is also the order of commits.
// The next `seq` is a scalar subquery of the plain `SELECT MAX(seq)` shape, which
// both engines answer from the key's index (a MAX beside other columns scans the table).
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log
     (seq, time, actor, action, resource, before, after, request_id, workspace, detail)
     VALUES (COALESCE((SELECT MAX(seq) FROM audit_log), 0) + 1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The trail's activity per day (UTC), actor and action since a time.
pub(crate) const AUDIT_ACTIVITY: &str = "SELECT time / 86400000, actor, action, COUNT(*), workspace FROM audit_log
     WHERE time >= ?1 GROUP BY time / 86400000, actor, action, workspace ORDER BY 1";

/// The columns an audit query reads, in [`AuditRecord`](plinth_core::audit::AuditRecord)'s order.
pub(crate) const AUDIT_COLUMNS: &str =
    "seq, time, actor, action, resource, before, after, request_id, workspace, detail";

/// Takes or renews the lease `?1` for holder `?2` until `?3 + ?4` (now + its
/// length), unless another holder's lease is still running at `?3`; answers
/// a row when this holder has it.
pub(crate) const ACQUIRE_LEASE: &str =
    "INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, CAST(?3 AS BIGINT) + CAST(?4 AS BIGINT))
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
     WHERE leases.holder = excluded.holder OR leases.expires <= ?3
     RETURNING holder";

/// A query of the trail, newest first; `max_results + 1` rows, so the caller
/// knows whether there is a next page.
pub(crate) fn audit_search(q: &plinth_core::audit::AuditQuery) -> Sql {
    let mut sql = Sql::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
    if let Some(actor) = &q.actor {
        // "bob" is also "bob (token t1…)": the user, by any credential.
        let with_token = format!("{actor} (");
        sql.push(" AND (actor = ");
        sql.bind_str(actor);
        sql.push(" OR substr(actor, 1, length(");
        sql.bind_str(&with_token);
        sql.push(")) = ");
        sql.bind_str(&with_token);
        sql.push(")");
    }
    if let Some(action) = q.action {
        sql.push(" AND action = ");
        sql.bind_str(action.as_str());
    }
    if let Some(resource) = &q.resource {
        let below = format!("{}/", resource.trim_end_matches('/'));
        sql.push(" AND (resource = ");
        sql.bind_str(resource.trim_end_matches('/'));
        sql.push(" OR substr(resource, 1, length(");
        sql.bind_str(&below);
        sql.push(")) = ");
        sql.bind_str(&below);
        sql.push(")");
    }
    if let Some(since) = q.since {
        sql.push(" AND time >= ");
        sql.bind_i64(since);
    }
    if let Some(until) = q.until {
        sql.push(" AND time < ");
        sql.bind_i64(until);
    }
    if let Some(seq) = q.before_seq {
        sql.push(" AND seq < ");
        sql.bind_i64(seq);
    }
    if let Some(workspace) = &q.workspace {
        sql.push(" AND workspace = ");
        sql.bind_str(workspace);
    }
    sql.push(" ORDER BY seq DESC LIMIT ");
    sql.bind_i64(q.max_results + 1);
    sql
}

/// Up to `max` records; the next page starts below the last one's `seq`.
pub(crate) fn audit_page(
    mut records: Vec<plinth_core::audit::AuditRecord>,
    max: i64,
) -> crate::Page<plinth_core::audit::AuditRecord> {
    let more = records.len() as i64 > max;
    records.truncate(max.max(0) as usize);
    let next_offset = if more { records.last().map(|r| r.seq) } else { None };
    crate::Page { items: records, next_offset }
}

/// A row of [`AUDIT_ACTIVITY`]; an action this build does not know is a database error.
pub(crate) fn activity_row(
    day: i64,
    actor: String,
    action: &str,
    count: i64,
    workspace: String,
) -> Result<plinth_core::usage::ActivityRow> {
    let parsed = plinth_core::audit::Action::parse(action)
        .ok_or_else(|| crate::Error::Database(format!("audit activity: stored action '{action}'")))?;
    Ok(plinth_core::usage::ActivityRow { day, workspace, actor, action: parsed, count })
}

// Roles, their grants and who holds them: the same text on both backends
// (`?N` placeholders, numbered for PostgreSQL). Ids are MAX + 1 (the SQLite
// backend has one writer; the PostgreSQL one holds a lock while it picks).
pub(crate) const NEXT_ROLE_ID: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM roles";
pub(crate) const NEXT_ROLE_PERMISSION_ID: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM role_permissions";
pub(crate) const NEXT_ROLE_ASSIGNMENT_ID: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM role_assignments";
pub(crate) const INSERT_ROLE: &str = "INSERT INTO roles (id, workspace, name, description) VALUES (?1, ?2, ?3, ?4)";
pub(crate) const SELECT_ROLE: &str = "SELECT id, workspace, name, description FROM roles WHERE id = ?1";
pub(crate) const SELECT_ROLE_BY_NAME: &str =
    "SELECT id, workspace, name, description FROM roles WHERE workspace = ?1 AND name = ?2";
pub(crate) const LIST_ROLES: &str = "SELECT id, workspace, name, description FROM roles ORDER BY workspace, name";
pub(crate) const LIST_ROLES_IN: &str =
    "SELECT id, workspace, name, description FROM roles WHERE workspace = ?1 ORDER BY name";
pub(crate) const LIST_ROLES_OF_USER: &str = "SELECT r.id, r.workspace, r.name, r.description FROM roles r
     JOIN role_assignments a ON a.role_id = r.id WHERE a.user_id = ?1 ORDER BY r.workspace, r.name";
pub(crate) const UPDATE_ROLE: &str =
    "UPDATE roles SET name = COALESCE(?2, name), description = COALESCE(?3, description) WHERE id = ?1";
pub(crate) const DELETE_ROLE: &str = "DELETE FROM roles WHERE id = ?1";
pub(crate) const DELETE_ROLE_PERMISSIONS: &str = "DELETE FROM role_permissions WHERE role_id = ?1";
pub(crate) const DELETE_ROLE_ASSIGNMENTS: &str = "DELETE FROM role_assignments WHERE role_id = ?1";
pub(crate) const SELECT_ROLE_PERMISSIONS: &str = "SELECT id, role_id, resource_type, resource_pattern, permission
     FROM role_permissions WHERE role_id = ?1 ORDER BY id";
pub(crate) const SELECT_ROLE_PERMISSION: &str =
    "SELECT id, role_id, resource_type, resource_pattern, permission FROM role_permissions WHERE id = ?1";
pub(crate) const SELECT_ROLE_PERMISSION_BY_KEY: &str = "SELECT id, role_id, resource_type, resource_pattern,
     permission FROM role_permissions WHERE role_id = ?1 AND resource_type = ?2 AND resource_pattern = ?3";
pub(crate) const INSERT_ROLE_PERMISSION: &str = "INSERT INTO role_permissions
     (id, role_id, resource_type, resource_pattern, permission) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(crate) const UPDATE_ROLE_PERMISSION: &str = "UPDATE role_permissions SET permission = ?2 WHERE id = ?1";
pub(crate) const DELETE_ROLE_PERMISSION: &str = "DELETE FROM role_permissions WHERE id = ?1";
pub(crate) const SELECT_ROLE_ASSIGNMENT: &str =
    "SELECT id, user_id, role_id FROM role_assignments WHERE user_id = ?1 AND role_id = ?2";
pub(crate) const INSERT_ROLE_ASSIGNMENT: &str =
    "INSERT INTO role_assignments (id, user_id, role_id) VALUES (?1, ?2, ?3)";
pub(crate) const DELETE_ROLE_ASSIGNMENT: &str = "DELETE FROM role_assignments WHERE user_id = ?1 AND role_id = ?2";
pub(crate) const LIST_ROLE_USERS: &str =
    "SELECT id, user_id, role_id FROM role_assignments WHERE role_id = ?1 ORDER BY id";
/// A user's grants in a workspace: every grant of every role they hold there.
pub(crate) const LIST_GRANTS: &str = "SELECT p.resource_type, p.resource_pattern, p.permission
     FROM role_permissions p JOIN roles r ON r.id = p.role_id JOIN role_assignments a ON a.role_id = r.id
     WHERE a.user_id = ?1 AND r.workspace = ?2";
/// Before a rename: a role that holds grants on both names keeps the renamed one's.
pub(crate) const DROP_GRANTS_SHADOWED_BY_RENAME: &str = "DELETE FROM role_permissions
     WHERE resource_type = ?2 AND resource_pattern = ?4
       AND role_id IN (SELECT id FROM roles WHERE workspace = ?1)
       AND role_id IN (SELECT role_id FROM role_permissions WHERE resource_type = ?2 AND resource_pattern = ?3)";
pub(crate) const RENAME_GRANTS: &str = "UPDATE role_permissions SET resource_pattern = ?4
     WHERE resource_type = ?2 AND resource_pattern = ?3 AND role_id IN (SELECT id FROM roles WHERE workspace = ?1)";
pub(crate) const FORGET_GRANTS: &str = "DELETE FROM role_permissions
     WHERE resource_type = ?2 AND resource_pattern = ?3 AND role_id IN (SELECT id FROM roles WHERE workspace = ?1)";
/// A deleted user's assignments, and their personal roles (`?2`: the personal role's name).
pub(crate) const DELETE_USER_ASSIGNMENTS: &str = "DELETE FROM role_assignments WHERE user_id = ?1";
pub(crate) const DELETE_PERSONAL_ROLE_PERMISSIONS: &str =
    "DELETE FROM role_permissions WHERE role_id IN (SELECT id FROM roles WHERE name = ?1)";
pub(crate) const DELETE_PERSONAL_ROLES: &str = "DELETE FROM roles WHERE name = ?1";

/// The experiment of a run (the permission check's lookup).
pub(crate) const RUN_EXPERIMENT: &str = "SELECT experiment_id FROM runs WHERE run_uuid = ?1";

// Workspaces: the same text on both backends (`?N` becomes `$N` for PostgreSQL).

pub(crate) const INSERT_WORKSPACE: &str = "INSERT INTO workspaces
     (name, description, default_artifact_root, creation_time, last_update_time)
     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING";
pub(crate) const GET_WORKSPACE: &str =
    "SELECT name, description, default_artifact_root, creation_time, last_update_time
     FROM workspaces WHERE name = ?1";
pub(crate) const LIST_WORKSPACES: &str =
    "SELECT name, description, default_artifact_root, creation_time, last_update_time FROM workspaces ORDER BY name";
pub(crate) const UPDATE_WORKSPACE: &str =
    "UPDATE workspaces SET description = ?2, default_artifact_root = ?3, last_update_time = ?4 WHERE name = ?1";
pub(crate) const EXPERIMENT_WORKSPACE: &str = "SELECT workspace FROM experiments WHERE experiment_id = ?1";
/// What keeps a workspace from being deleted (MLflow's RESTRICT mode): each
/// table's resources in it. Ended jobs do not count (no API deletes a job);
/// they go with the workspace.
pub(crate) const WORKSPACE_CONTENTS: &[(&str, &str)] = &[
    ("experiments", "SELECT COUNT(*) FROM experiments WHERE workspace = ?1"),
    ("registered_models", "SELECT COUNT(*) FROM registered_models WHERE workspace = ?1"),
    ("deployments", "SELECT COUNT(*) FROM deployments WHERE workspace = ?1"),
    ("jobs", "SELECT COUNT(*) FROM jobs WHERE workspace = ?1 AND status IN ('QUEUED', 'RUNNING')"),
];
/// A deleted workspace's leftovers: ended jobs, its roles with their grants
/// and assignments, then the workspace. The trail keeps its records.
pub(crate) const DELETE_WORKSPACE: &[&str] = &[
    "DELETE FROM jobs WHERE workspace = ?1",
    "DELETE FROM role_assignments WHERE role_id IN (SELECT id FROM roles WHERE workspace = ?1)",
    "DELETE FROM role_permissions WHERE role_id IN (SELECT id FROM roles WHERE workspace = ?1)",
    "DELETE FROM roles WHERE workspace = ?1",
    "DELETE FROM workspaces WHERE name = ?1",
];

/// What an update leaves: `None` keeps a field, an empty string clears it.
pub(crate) fn updated_workspace(
    mut current: plinth_core::workspaces::Workspace,
    update: &plinth_core::workspaces::WorkspaceUpdate,
    now: i64,
) -> plinth_core::workspaces::Workspace {
    let apply = |field: &mut Option<String>, new: &Option<String>| {
        if let Some(v) = new {
            *field = (!v.is_empty()).then(|| v.clone());
        }
    };
    apply(&mut current.description, &update.description);
    apply(&mut current.default_artifact_root, &update.default_artifact_root);
    current.last_update_time = now;
    current
}
