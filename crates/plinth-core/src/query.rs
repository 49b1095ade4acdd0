//! Typed searches: what each store search takes, as values.
//!
//! A filter written in MLflow's grammar is parsed once by [`crate::search`]
//! into a generic AST, and converted here into the clauses one entity
//! accepts: a metric compares to a number, a tag to a string, an attribute is
//! an enum member. Whatever a store receives is already checked, so every
//! backend matches these enums exhaustively and refuses nothing itself; the
//! messages for bad filters are the ones below, whichever backend runs.
//! Callers that are not an HTTP edge (the UI, the engine) build the values
//! directly instead of writing filter text.

use crate::experiments::ViewType;
use crate::search::{self, Clause, Comparator, Entity, EntityKind, OrderBy, Value};
use crate::{Error, Result};

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl NumOp {
    pub fn sql(self) -> &'static str {
        match self {
            NumOp::Eq => "=",
            NumOp::Ne => "!=",
            NumOp::Lt => "<",
            NumOp::Le => "<=",
            NumOp::Gt => ">",
            NumOp::Ge => ">=",
        }
    }

    fn of(op: Comparator) -> Option<NumOp> {
        Some(match op {
            Comparator::Eq => NumOp::Eq,
            Comparator::Ne => NumOp::Ne,
            Comparator::Lt => NumOp::Lt,
            Comparator::Le => NumOp::Le,
            Comparator::Gt => NumOp::Gt,
            Comparator::Ge => NumOp::Ge,
            _ => return None,
        })
    }
}

/// A test on a string value. `Like` and `ILike` take SQL patterns (`%`, `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    Eq(String),
    Ne(String),
    Like(String),
    ILike(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

impl TextMatch {
    /// `ILIKE '%needle%'`: the needle's own `%` and `_` are matched as any
    /// characters, as in MLflow's UI search.
    pub fn contains(needle: &str) -> TextMatch {
        TextMatch::ILike(format!("%{needle}%"))
    }

    fn of(op: Comparator, value: &Value) -> Option<TextMatch> {
        Some(match (op, value) {
            (Comparator::Eq, Value::Str(s)) => TextMatch::Eq(s.clone()),
            (Comparator::Ne, Value::Str(s)) => TextMatch::Ne(s.clone()),
            (Comparator::Like, Value::Str(s)) => TextMatch::Like(s.clone()),
            (Comparator::ILike, Value::Str(s)) => TextMatch::ILike(s.clone()),
            (Comparator::In, Value::List(v)) => TextMatch::In(v.clone()),
            (Comparator::NotIn, Value::List(v)) => TextMatch::NotIn(v.clone()),
            _ => return None,
        })
    }

    /// Only `= != LIKE ILIKE` on one string (MLflow's rule for logged-model params and tags).
    fn single(op: Comparator, value: &Value) -> Option<TextMatch> {
        Self::of(op, value).filter(|m| !matches!(m, TextMatch::In(_) | TextMatch::NotIn(_)))
    }
}

/// A test on a keyed value (a param or tag): its value, or whether it is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTest {
    Value(TextMatch),
    /// The key is not set.
    IsNull,
    /// The key is set, whatever its value.
    IsNotNull,
}

impl KeyTest {
    fn of(op: Comparator, value: &Value) -> Option<KeyTest> {
        match (op, value) {
            (Comparator::IsNull, Value::None) => Some(KeyTest::IsNull),
            (Comparator::IsNotNull, Value::None) => Some(KeyTest::IsNotNull),
            _ => TextMatch::of(op, value).map(KeyTest::Value),
        }
    }
}

/// One sort key and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort<K> {
    pub key: K,
    pub ascending: bool,
}

impl<K> Sort<K> {
    pub fn asc(key: K) -> Self {
        Sort { key, ascending: true }
    }
    pub fn desc(key: K) -> Self {
        Sort { key, ascending: false }
    }
}

/// A search over one kind of entity: clauses joined by AND, sort keys in
/// order (the store appends its own tie-breakers), and paging.
#[derive(Debug, Clone, PartialEq)]
pub struct Query<C, K> {
    pub filter: Vec<C>,
    pub order_by: Vec<Sort<K>>,
    pub max_results: i64,
    pub offset: i64,
}

impl<C, K> Default for Query<C, K> {
    fn default() -> Self {
        Query { filter: Vec::new(), order_by: Vec::new(), max_results: 0, offset: 0 }
    }
}

/// A clause type one entity's search accepts.
pub trait Filter: Sized {
    fn from_clause(clause: Clause) -> Result<Self>;
}

/// A sort key type one entity's search accepts.
pub trait SortKey: Sized {
    fn from_entity(entity: Entity) -> Result<Self>;
}

/// Parses a filter in MLflow's grammar into one entity's clauses.
pub fn parse_filter<C: Filter>(filter: &str) -> Result<Vec<C>> {
    search::parse_filter(filter)?.into_iter().map(C::from_clause).collect()
}

/// Parses `order_by` entries (`<identifier> [ASC|DESC]`) into one entity's sort keys.
pub fn parse_order_by<K: SortKey>(order_by: &[String]) -> Result<Vec<Sort<K>>> {
    order_by
        .iter()
        .map(|o| {
            let OrderBy { entity, ascending } = search::parse_order_by(o)?;
            Ok(Sort { key: K::from_entity(entity)?, ascending })
        })
        .collect()
}

impl<C: Filter, K: SortKey> Query<C, K> {
    /// A query from the wire's filter text and `order_by` list.
    pub fn parse(filter: &str, order_by: &[String], max_results: i64, offset: i64) -> Result<Self> {
        Ok(Query { filter: parse_filter(filter)?, order_by: parse_order_by(order_by)?, max_results, offset })
    }
}

fn bad_comparison(what: &str, c: &Clause) -> Error {
    Error::invalid(format!("Invalid comparator '{}' or value for {what} '{}'", c.op.sql(), c.entity.key))
}

fn number(c: &Clause) -> Option<(NumOp, f64)> {
    match c.value {
        Value::Num(n) => NumOp::of(c.op).map(|op| (op, n)),
        _ => None,
    }
}

// --- experiments ---

#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentClause {
    /// Only the experiments a caller may read (added by the engine, never parsed from a filter).
    Visible(crate::access::Visible),
    Name(TextMatch),
    CreationTime(NumOp, i64),
    LastUpdateTime(NumOp, i64),
    Tag {
        key: String,
        test: TextMatch,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExperimentSortKey {
    Name,
    ExperimentId,
    CreationTime,
    LastUpdateTime,
}

pub type ExperimentQuery = Query<ExperimentClause, ExperimentSortKey>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperimentSearch {
    pub view: ViewType,
    pub query: ExperimentQuery,
}

impl Filter for ExperimentClause {
    fn from_clause(c: Clause) -> Result<Self> {
        let time = |c: &Clause| number(c).map(|(op, n)| (op, n as i64)).ok_or_else(|| bad_comparison("attribute", c));
        match (c.entity.kind, c.entity.key.as_str()) {
            (EntityKind::Attribute, "name") => {
                TextMatch::of(c.op, &c.value).map(ExperimentClause::Name).ok_or_else(|| bad_comparison("attribute", &c))
            }
            (EntityKind::Attribute, "creation_time") => time(&c).map(|(op, n)| ExperimentClause::CreationTime(op, n)),
            (EntityKind::Attribute, "last_update_time") => {
                time(&c).map(|(op, n)| ExperimentClause::LastUpdateTime(op, n))
            }
            (EntityKind::Attribute, other) => Err(Error::invalid(format!(
                "Invalid attribute key '{other}' specified. Valid keys are name, creation_time, last_update_time"
            ))),
            (EntityKind::Tag, _) => match TextMatch::of(c.op, &c.value) {
                Some(test) => Ok(ExperimentClause::Tag { key: c.entity.key, test }),
                None => Err(bad_comparison("tag", &c)),
            },
            (_, key) => Err(Error::invalid(format!(
                "Invalid filter for experiments: '{key}' is neither an attribute (name, creation_time, \
                 last_update_time) nor a tag"
            ))),
        }
    }
}

impl SortKey for ExperimentSortKey {
    fn from_entity(e: Entity) -> Result<Self> {
        match (e.kind, e.key.as_str()) {
            (EntityKind::Attribute, "name") => Ok(ExperimentSortKey::Name),
            (EntityKind::Attribute, "experiment_id") => Ok(ExperimentSortKey::ExperimentId),
            (EntityKind::Attribute, "creation_time") => Ok(ExperimentSortKey::CreationTime),
            (EntityKind::Attribute, "last_update_time") => Ok(ExperimentSortKey::LastUpdateTime),
            _ => Err(Error::invalid(format!("Invalid order_by key '{}' for experiments", e.key))),
        }
    }
}

// --- runs ---

/// The attributes of a run that filters and sorts may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAttribute {
    RunId,
    RunName,
    Status,
    UserId,
    ArtifactUri,
    LifecycleStage,
    /// Sort only: filter by experiment through `experiment_ids`.
    ExperimentId,
    StartTime,
    EndTime,
}

impl RunAttribute {
    pub fn parse(key: &str) -> Option<RunAttribute> {
        Some(match key {
            "run_id" | "run_uuid" | "id" => RunAttribute::RunId,
            "run_name" | "name" => RunAttribute::RunName,
            "status" => RunAttribute::Status,
            "user_id" => RunAttribute::UserId,
            "artifact_uri" => RunAttribute::ArtifactUri,
            "lifecycle_stage" => RunAttribute::LifecycleStage,
            "experiment_id" => RunAttribute::ExperimentId,
            "start_time" | "created" | "Created" => RunAttribute::StartTime,
            "end_time" => RunAttribute::EndTime,
            _ => return None,
        })
    }

    /// Times compare to numbers; the others are strings.
    pub fn is_numeric(self) -> bool {
        matches!(self, RunAttribute::StartTime | RunAttribute::EndTime)
    }
}

/// What a dataset clause looks at: the dataset's name or digest, or the
/// context the run used it in (`mlflow.data.context`: training, eval, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetField {
    Name,
    Digest,
    Context,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunClause {
    /// The run's latest value of the metric (NaN never matches).
    Metric {
        key: String,
        op: NumOp,
        value: f64,
    },
    Param {
        key: String,
        test: KeyTest,
    },
    Tag {
        key: String,
        test: KeyTest,
    },
    /// A string attribute (never a time, nor `ExperimentId`).
    Text {
        attribute: RunAttribute,
        test: TextMatch,
    },
    /// `StartTime` or `EndTime`, in milliseconds.
    Time {
        attribute: RunAttribute,
        op: NumOp,
        value: i64,
    },
    /// The run used a dataset that matches.
    Dataset {
        field: DatasetField,
        test: TextMatch,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSortKey {
    /// The latest value; runs without it (or with NaN) sort last.
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(RunAttribute),
}

pub type RunQuery = Query<RunClause, RunSortKey>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSearch {
    pub experiment_ids: Vec<String>,
    pub view: ViewType,
    pub query: RunQuery,
}

impl Filter for RunClause {
    fn from_clause(c: Clause) -> Result<Self> {
        match c.entity.kind {
            EntityKind::Metric => match number(&c) {
                Some((op, value)) => Ok(RunClause::Metric { key: c.entity.key, op, value }),
                None => Err(bad_comparison("metric", &c)),
            },
            EntityKind::Param | EntityKind::Tag => {
                let is_param = c.entity.kind == EntityKind::Param;
                let Some(test) = KeyTest::of(c.op, &c.value) else {
                    return Err(bad_comparison(if is_param { "param" } else { "tag" }, &c));
                };
                let key = c.entity.key;
                Ok(if is_param { RunClause::Param { key, test } } else { RunClause::Tag { key, test } })
            }
            EntityKind::Dataset => {
                let field = match c.entity.key.as_str() {
                    "name" => DatasetField::Name,
                    "digest" => DatasetField::Digest,
                    "context" => DatasetField::Context,
                    _ => return Err(bad_comparison("dataset attribute", &c)),
                };
                match TextMatch::of(c.op, &c.value) {
                    Some(test) => Ok(RunClause::Dataset { field, test }),
                    None => Err(bad_comparison("dataset attribute", &c)),
                }
            }
            EntityKind::Attribute => {
                let Some(attribute) = RunAttribute::parse(&c.entity.key) else {
                    return Err(Error::invalid(format!(
                        "Invalid attribute key '{}' specified. Valid keys are run_id, run_name, status, user_id, \
                         artifact_uri, lifecycle_stage, start_time, end_time",
                        c.entity.key
                    )));
                };
                if attribute == RunAttribute::ExperimentId {
                    return Err(Error::invalid("Filtering on experiment_id is not supported; pass experiment_ids"));
                }
                if attribute.is_numeric() {
                    match number(&c) {
                        Some((op, n)) => Ok(RunClause::Time { attribute, op, value: n as i64 }),
                        None => Err(bad_comparison("attribute", &c)),
                    }
                } else {
                    match TextMatch::of(c.op, &c.value) {
                        Some(test) => Ok(RunClause::Text { attribute, test }),
                        None => Err(bad_comparison("attribute", &c)),
                    }
                }
            }
        }
    }
}

impl SortKey for RunSortKey {
    fn from_entity(e: Entity) -> Result<Self> {
        match e.kind {
            EntityKind::Metric => Ok(RunSortKey::Metric(e.key)),
            EntityKind::Param => Ok(RunSortKey::Param(e.key)),
            EntityKind::Tag => Ok(RunSortKey::Tag(e.key)),
            EntityKind::Attribute => RunAttribute::parse(&e.key)
                .map(RunSortKey::Attribute)
                .ok_or_else(|| Error::invalid(format!("Invalid order_by attribute '{}'", e.key))),
            EntityKind::Dataset => Err(Error::invalid("Ordering by datasets is not supported")),
        }
    }
}

// --- registered models and model versions ---

#[derive(Debug, Clone, PartialEq)]
pub enum RegisteredModelClause {
    Name(TextMatch),
    /// As in MLflow's registry, `!=` and `NOT IN` also match models without the tag.
    Tag {
        key: String,
        test: KeyTest,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisteredModelSortKey {
    Name,
    CreationTime,
    LastUpdatedTime,
}

pub type RegisteredModelQuery = Query<RegisteredModelClause, RegisteredModelSortKey>;

impl Filter for RegisteredModelClause {
    fn from_clause(c: Clause) -> Result<Self> {
        match (c.entity.kind, c.entity.key.as_str()) {
            (EntityKind::Attribute, "name") => TextMatch::of(c.op, &c.value)
                .map(RegisteredModelClause::Name)
                .ok_or_else(|| bad_comparison("attribute", &c)),
            (EntityKind::Tag, _) => match KeyTest::of(c.op, &c.value) {
                Some(test) => Ok(RegisteredModelClause::Tag { key: c.entity.key, test }),
                None => Err(bad_comparison("tag", &c)),
            },
            (_, key) => Err(Error::invalid(format!(
                "Invalid filter for registered models: '{key}'. Valid search keys are name and tags.<key>"
            ))),
        }
    }
}

impl SortKey for RegisteredModelSortKey {
    fn from_entity(e: Entity) -> Result<Self> {
        match (e.kind, e.key.as_str()) {
            (EntityKind::Attribute, "name") => Ok(RegisteredModelSortKey::Name),
            (EntityKind::Attribute, "creation_timestamp" | "creation_time") => Ok(RegisteredModelSortKey::CreationTime),
            (EntityKind::Attribute, "last_updated_timestamp" | "last_updated_time") => {
                Ok(RegisteredModelSortKey::LastUpdatedTime)
            }
            (_, other) => Err(Error::invalid(format!("Invalid order by key '{other}' for registered models"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelVersionClause {
    Name(TextMatch),
    RunId(TextMatch),
    Source(TextMatch),
    ModelId(TextMatch),
    Version(NumOp, i64),
    /// As in MLflow's registry, `!=` and `NOT IN` also match versions without the tag.
    Tag {
        key: String,
        test: KeyTest,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelVersionSortKey {
    Name,
    Version,
    CreationTime,
    LastUpdatedTime,
}

pub type ModelVersionQuery = Query<ModelVersionClause, ModelVersionSortKey>;

impl Filter for ModelVersionClause {
    fn from_clause(c: Clause) -> Result<Self> {
        let text = |c: &Clause| TextMatch::of(c.op, &c.value).ok_or_else(|| bad_comparison("attribute", c));
        match (c.entity.kind, c.entity.key.as_str()) {
            (EntityKind::Attribute, "name") => text(&c).map(ModelVersionClause::Name),
            (EntityKind::Attribute, "run_id") => text(&c).map(ModelVersionClause::RunId),
            (EntityKind::Attribute, "source_path" | "source") => text(&c).map(ModelVersionClause::Source),
            (EntityKind::Attribute, "model_id") => text(&c).map(ModelVersionClause::ModelId),
            (EntityKind::Attribute, "version_number" | "version") => {
                let n = match &c.value {
                    Value::Num(n) => *n as i64,
                    Value::Str(s) => s.parse().map_err(|_| Error::invalid(format!("Invalid version number '{s}'")))?,
                    _ => return Err(Error::invalid("version_number compares to a number")),
                };
                let op = NumOp::of(c.op)
                    .ok_or_else(|| Error::invalid(format!("Invalid comparator '{}' for version_number", c.op.sql())))?;
                Ok(ModelVersionClause::Version(op, n))
            }
            (EntityKind::Tag, _) => match KeyTest::of(c.op, &c.value) {
                Some(test) => Ok(ModelVersionClause::Tag { key: c.entity.key, test }),
                None => Err(bad_comparison("tag", &c)),
            },
            (_, key) => Err(Error::invalid(format!(
                "Invalid filter for model versions: '{key}'. Valid search keys are name, run_id, source_path, \
                 model_id, version_number and tags.<key>"
            ))),
        }
    }
}

impl SortKey for ModelVersionSortKey {
    fn from_entity(e: Entity) -> Result<Self> {
        match (e.kind, e.key.as_str()) {
            (EntityKind::Attribute, "name") => Ok(ModelVersionSortKey::Name),
            (EntityKind::Attribute, "version_number" | "version") => Ok(ModelVersionSortKey::Version),
            (EntityKind::Attribute, "creation_timestamp" | "creation_time") => Ok(ModelVersionSortKey::CreationTime),
            (EntityKind::Attribute, "last_updated_timestamp" | "last_updated_time") => {
                Ok(ModelVersionSortKey::LastUpdatedTime)
            }
            (_, other) => Err(Error::invalid(format!("Invalid order by key '{other}' for model versions"))),
        }
    }
}

// --- logged models ---

/// The attributes of a logged model that filters and sorts may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedModelAttribute {
    ModelId,
    Name,
    ModelType,
    Status,
    SourceRunId,
    ExperimentId,
    ArtifactLocation,
    CreationTimestamp,
    LastUpdatedTimestamp,
}

impl LoggedModelAttribute {
    pub fn parse(key: &str) -> Option<LoggedModelAttribute> {
        Some(match key {
            "model_id" => LoggedModelAttribute::ModelId,
            "name" => LoggedModelAttribute::Name,
            "model_type" => LoggedModelAttribute::ModelType,
            "status" => LoggedModelAttribute::Status,
            "source_run_id" => LoggedModelAttribute::SourceRunId,
            "experiment_id" => LoggedModelAttribute::ExperimentId,
            "artifact_location" => LoggedModelAttribute::ArtifactLocation,
            "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => LoggedModelAttribute::CreationTimestamp,
            "last_updated_timestamp" | "last_updated_time" | "last_updated_timestamp_ms" => {
                LoggedModelAttribute::LastUpdatedTimestamp
            }
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, LoggedModelAttribute::CreationTimestamp | LoggedModelAttribute::LastUpdatedTimestamp)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoggedModelClause {
    /// A string attribute.
    Text { attribute: LoggedModelAttribute, test: TextMatch },
    /// A timestamp attribute, in milliseconds.
    Time { attribute: LoggedModelAttribute, op: NumOp, value: f64 },
    /// Some value of the metric linked to the model (on the search's datasets, if any).
    Metric { key: String, op: NumOp, value: f64 },
    /// `= != LIKE ILIKE` only.
    Param { key: String, test: TextMatch },
    /// `= != LIKE ILIKE` only.
    Tag { key: String, test: TextMatch },
}

impl Filter for LoggedModelClause {
    /// MLflow's rules: metrics and timestamps take `< <= > >= = !=` and a
    /// number; params and tags `= != LIKE ILIKE`; string attributes also
    /// `IN` and `NOT IN`.
    fn from_clause(c: Clause) -> Result<Self> {
        let bad = |what: &str, c: &Clause| {
            Error::invalid(format!(
                "Invalid comparison operator '{}' or value for {what} '{}'",
                c.op.sql(),
                c.entity.key
            ))
        };
        match c.entity.kind {
            EntityKind::Metric => match number(&c) {
                Some((op, value)) => Ok(LoggedModelClause::Metric { key: c.entity.key, op, value }),
                None => Err(bad("metric", &c)),
            },
            EntityKind::Param | EntityKind::Tag => {
                let is_param = c.entity.kind == EntityKind::Param;
                let Some(test) = TextMatch::single(c.op, &c.value) else {
                    return Err(bad(if is_param { "param" } else { "tag" }, &c));
                };
                let key = c.entity.key;
                Ok(if is_param { LoggedModelClause::Param { key, test } } else { LoggedModelClause::Tag { key, test } })
            }
            EntityKind::Dataset => Err(Error::invalid(format!(
                "Invalid entity type 'datasets' in logged model filter; pass datasets in the request's `datasets` \
                 field (clause on '{}')",
                c.entity.key
            ))),
            EntityKind::Attribute => {
                let Some(attribute) = LoggedModelAttribute::parse(&c.entity.key) else {
                    return Err(Error::invalid(format!(
                        "Invalid logged model search key '{}'. Valid attributes are name, model_id, model_type, \
                         status, source_run_id, creation_timestamp, last_updated_timestamp",
                        c.entity.key
                    )));
                };
                if attribute.is_numeric() {
                    match number(&c) {
                        Some((op, value)) => Ok(LoggedModelClause::Time { attribute, op, value }),
                        None => Err(bad("attribute", &c)),
                    }
                } else {
                    match TextMatch::of(c.op, &c.value) {
                        Some(test) => Ok(LoggedModelClause::Text { attribute, test }),
                        None => Err(bad("attribute", &c)),
                    }
                }
            }
        }
    }
}

/// What a logged-model `order_by` entry sorts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedModelSortKey {
    Attribute(LoggedModelAttribute),
    /// The latest value of a metric linked to the model.
    Metric(String),
}

impl LoggedModelSortKey {
    /// Parses an `order_by` field name: an attribute, or `metrics.<key>`
    /// (MLflow sorts logged models by nothing else).
    pub fn parse(field_name: &str) -> Result<LoggedModelSortKey> {
        let field = field_name.trim();
        if let Some((entity, key)) = field.split_once('.') {
            if entity != "metrics" || key.is_empty() {
                return Err(Error::invalid(format!(
                    "Invalid order by field name: {field_name}. Only attributes and `metrics.<name>` are supported."
                )));
            }
            return Ok(LoggedModelSortKey::Metric(key.trim_matches('`').to_string()));
        }
        LoggedModelAttribute::parse(field)
            .map(LoggedModelSortKey::Attribute)
            .ok_or_else(|| Error::invalid(format!("Invalid order by field name: {field_name}")))
    }
}

/// A dataset, by name and optionally digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetFilter {
    pub name: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedModelOrder {
    pub key: LoggedModelSortKey,
    pub ascending: bool,
    /// For metric keys: only values logged on this dataset count.
    pub dataset: Option<DatasetFilter>,
}

/// A logged-model search, as MLflow's `SearchLoggedModels` names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoggedModelSearch {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<LoggedModelClause>,
    /// Keep models with metrics on any of these datasets; metric clauses
    /// then only look at values on them.
    pub datasets: Vec<DatasetFilter>,
    pub order_by: Vec<LoggedModelOrder>,
    pub max_results: i64,
    pub offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(filter: &str) -> Result<Vec<RunClause>> {
        parse_filter(filter)
    }

    #[test]
    fn run_clauses_are_typed() {
        assert_eq!(
            runs("metrics.acc > 0.9 and params.algo = 'als' and tags.t IS NULL").ok(),
            Some(vec![
                RunClause::Metric { key: "acc".into(), op: NumOp::Gt, value: 0.9 },
                RunClause::Param { key: "algo".into(), test: KeyTest::Value(TextMatch::Eq("als".into())) },
                RunClause::Tag { key: "t".into(), test: KeyTest::IsNull },
            ])
        );
        assert_eq!(
            runs("attributes.start_time >= 5 AND run_name LIKE 'r%' AND datasets.context IN ('eval')").ok(),
            Some(vec![
                RunClause::Time { attribute: RunAttribute::StartTime, op: NumOp::Ge, value: 5 },
                RunClause::Text { attribute: RunAttribute::RunName, test: TextMatch::Like("r%".into()) },
                RunClause::Dataset { field: DatasetField::Context, test: TextMatch::In(vec!["eval".into()]) },
            ])
        );
    }

    #[test]
    fn run_clauses_are_checked() {
        for bad in [
            "metrics.a = 'x'",
            "metrics.a LIKE '1'",
            "params.a > 1",
            "attributes.start_time = 'x'",
            "attributes.status > 1",
            "attributes.nope = 'x'",
            "attributes.experiment_id = '1'",
            "datasets.size = 'x'",
            "datasets.name > 1",
        ] {
            assert!(runs(bad).is_err(), "{bad}");
        }
        assert!(parse_order_by::<RunSortKey>(&["datasets.name".into()]).is_err());
        assert!(parse_order_by::<RunSortKey>(&["attributes.nope".into()]).is_err());
        assert_eq!(
            parse_order_by::<RunSortKey>(&["metrics.acc DESC".into(), "start_time".into()]).ok(),
            Some(vec![
                Sort::desc(RunSortKey::Metric("acc".into())),
                Sort::asc(RunSortKey::Attribute(RunAttribute::StartTime))
            ])
        );
    }

    #[test]
    fn experiment_and_registry_clauses() {
        assert_eq!(
            parse_filter::<ExperimentClause>("name ILIKE '%x%' AND creation_time > 3 AND tags.k = 'v'").ok(),
            Some(vec![
                ExperimentClause::Name(TextMatch::ILike("%x%".into())),
                ExperimentClause::CreationTime(NumOp::Gt, 3),
                ExperimentClause::Tag { key: "k".into(), test: TextMatch::Eq("v".into()) },
            ])
        );
        assert!(parse_filter::<ExperimentClause>("metrics.a > 1").is_err());
        assert!(parse_filter::<ExperimentClause>("creation_time = 'x'").is_err());
        assert!(parse_order_by::<ExperimentSortKey>(&["tags.x".into()]).is_err());
        assert_eq!(
            parse_filter::<ModelVersionClause>("version_number >= '2' AND tags.t != 'x'").ok(),
            Some(vec![
                ModelVersionClause::Version(NumOp::Ge, 2),
                ModelVersionClause::Tag { key: "t".into(), test: KeyTest::Value(TextMatch::Ne("x".into())) },
            ])
        );
        assert!(parse_filter::<ModelVersionClause>("version_number LIKE '2'").is_err());
        assert!(parse_filter::<RegisteredModelClause>("run_id = 'x'").is_err());
        // A tag named like an attribute does not sort by the attribute.
        assert!(parse_order_by::<RegisteredModelSortKey>(&["tags.name".into()]).is_err());
    }

    #[test]
    fn logged_model_clauses() {
        let ok = |s: &str| parse_filter::<LoggedModelClause>(s).is_ok();
        assert!(ok("name = 'model'"));
        assert!(ok("attributes.name LIKE 'mo%'"));
        assert!(ok("source_run_id IN ('a', 'b')"));
        assert!(ok("creation_time > 5"));
        assert!(ok("metrics.acc >= 0.5"));
        assert!(ok("params.lr = '0.1'"));
        assert!(ok("tags.t ILIKE '%x%'"));
        assert!(!ok("name > 'a'"));
        assert!(!ok("creation_time = 'x'"));
        assert!(!ok("metrics.acc LIKE 'x'"));
        assert!(!ok("params.lr IN ('a')"));
        assert!(!ok("run_name = 'x'"));
        assert!(!ok("datasets.name = 'd'"));
        assert_eq!(
            LoggedModelSortKey::parse("creation_time").ok(),
            Some(LoggedModelSortKey::Attribute(LoggedModelAttribute::CreationTimestamp))
        );
        assert_eq!(LoggedModelSortKey::parse("metrics.acc").ok(), Some(LoggedModelSortKey::Metric("acc".into())));
        assert!(LoggedModelSortKey::parse("params.lr").is_err());
        assert!(LoggedModelSortKey::parse("bogus").is_err());
    }
}
