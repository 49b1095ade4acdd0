//! MLflow's search grammar: `metrics.acc > 0.9 AND params.algo = 'als'` and
//! `order_by` clauses such as `metrics.acc DESC`.
//!
//! Parsing yields a typed AST; each store turns it into its own query with
//! bound parameters. Which keys and comparators an entity accepts is checked
//! here, so every backend rejects the same filters with the same messages.

use crate::{Error, Result};

/// What a filter clause or sort key looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: EntityKind,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Comparator::Eq | Comparator::Ne | Comparator::Lt | Comparator::Le | Comparator::Gt | Comparator::Ge
        )
    }
    pub fn is_string(self) -> bool {
        matches!(
            self,
            Comparator::Eq
                | Comparator::Ne
                | Comparator::Like
                | Comparator::ILike
                | Comparator::In
                | Comparator::NotIn
                | Comparator::IsNull
                | Comparator::IsNotNull
        )
    }
    pub fn sql(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    List(Vec<String>),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Comparator,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub entity: Entity,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Quoted(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl std::fmt::Display for Token {
    /// As the user wrote it, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Word(w) => write!(f, "'{w}'"),
            Token::Str(s) => write!(f, "the string '{s}'"),
            Token::Quoted(q) => write!(f, "`{q}`"),
            Token::Op(op) => write!(f, "'{op}'"),
            Token::LParen => f.write_str("'('"),
            Token::RParen => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
        }
    }
}

/// A token, or the end of the filter, for messages.
struct Found<'a>(Option<&'a Token>);

impl std::fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => t.fmt(f),
            None => f.write_str("the end of the filter"),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "Invalid filter '{input}': unterminated quoted string"
                            )));
                        }
                        Some('\\') if chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&ch) if ch == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                s.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(if quote == '`' { Token::Quoted(s) } else { Token::Str(s) });
            }
            '=' => {
                out.push(Token::Op(if chars.get(i + 1) == Some(&'=') {
                    i += 1;
                    "="
                } else {
                    "="
                }));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op("!="));
                i += 2;
            }
            '<' => {
                let (op, n) = match chars.get(i + 1) {
                    Some('=') => ("<=", 2),
                    Some('>') => ("!=", 2),
                    _ => ("<", 1),
                };
                out.push(Token::Op(op));
                i += n;
            }
            '>' => {
                let (op, n) = if chars.get(i + 1) == Some(&'=') { (">=", 2) } else { (">", 1) };
                out.push(Token::Op(op));
                i += n;
            }
            _ => {
                let start = i;
                while i < chars.len() {
                    let ch = chars[i];
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | ',' | '=' | '<' | '>' | '!' | '\'' | '"' | '`') {
                        break;
                    }
                    i += 1;
                }
                if start == i {
                    return Err(Error::invalid(format!("Invalid filter '{input}': unexpected character '{c}'")));
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self> {
        Ok(Parser { input, tokens: tokenize(input)?, pos: 0 })
    }
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::invalid(format!("Invalid filter '{}': {msg}", self.input))
    }
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn entity(&mut self) -> Result<Entity> {
        let word = match self.next() {
            Some(Token::Word(w)) => w,
            Some(Token::Quoted(q)) => return Ok(Entity { kind: EntityKind::Attribute, key: q }),
            other => {
                return Err(
                    self.err(format!("expected an identifier such as metrics.<key>, found {}", Found(other.as_ref())))
                );
            }
        };
        let (prefix, rest) = match word.split_once('.') {
            Some((p, r)) => (p.to_string(), r.to_string()),
            None => return Ok(Entity { kind: EntityKind::Attribute, key: word }),
        };
        let kind = entity_kind(&prefix).ok_or_else(|| {
            self.err(format!(
                "invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))
        })?;
        let key = if rest.is_empty() {
            match self.next() {
                Some(Token::Str(s)) | Some(Token::Quoted(s)) => s,
                _ => return Err(self.err(format!("missing key after '{word}'"))),
            }
        } else {
            rest
        };
        if key.is_empty() {
            return Err(self.err("empty key"));
        }
        Ok(Entity { kind, key })
    }

    fn comparator(&mut self) -> Result<Comparator> {
        match self.next() {
            Some(Token::Op(op)) => Ok(match op {
                "=" => Comparator::Eq,
                "!=" => Comparator::Ne,
                "<" => Comparator::Lt,
                "<=" => Comparator::Le,
                ">" => Comparator::Gt,
                _ => Comparator::Ge,
            }),
            Some(Token::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "LIKE" => Ok(Comparator::Like),
                "ILIKE" => Ok(Comparator::ILike),
                "IN" => Ok(Comparator::In),
                "NOT" => {
                    if self.peek_keyword("IN") {
                        self.pos += 1;
                        Ok(Comparator::NotIn)
                    } else {
                        Err(self.err("expected IN after NOT"))
                    }
                }
                "IS" => {
                    if self.peek_keyword("NOT") {
                        self.pos += 1;
                        if self.peek_keyword("NULL") {
                            self.pos += 1;
                            return Ok(Comparator::IsNotNull);
                        }
                    } else if self.peek_keyword("NULL") {
                        self.pos += 1;
                        return Ok(Comparator::IsNull);
                    }
                    Err(self.err("expected NULL or NOT NULL after IS"))
                }
                other => Err(self.err(format!("invalid comparator '{other}'"))),
            },
            other => Err(self.err(format!("expected a comparator, found {}", Found(other.as_ref())))),
        }
    }

    fn value(&mut self, op: Comparator) -> Result<Value> {
        if matches!(op, Comparator::IsNull | Comparator::IsNotNull) {
            return Ok(Value::None);
        }
        if matches!(op, Comparator::In | Comparator::NotIn) {
            if self.next() != Some(Token::LParen) {
                return Err(self.err("expected '(' after IN"));
            }
            let mut items = Vec::new();
            loop {
                match self.next() {
                    Some(Token::Str(s)) => items.push(s),
                    Some(Token::Word(w)) => items.push(w),
                    other => {
                        return Err(self
                            .err(format!("expected a quoted value in the IN list, found {}", Found(other.as_ref()))));
                    }
                }
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::RParen) => break,
                    _ => return Err(self.err("expected ',' or ')' in the IN list")),
                }
            }
            return Ok(Value::List(items));
        }
        match self.next() {
            Some(Token::Str(s)) => Ok(Value::Str(s)),
            Some(Token::Word(w)) => w
                .parse::<f64>()
                .map(Value::Num)
                .map_err(|_| self.err(format!("expected a number or a quoted string, found '{w}'"))),
            other => Err(self.err(format!("expected a value, found {}", Found(other.as_ref())))),
        }
    }
}

fn entity_kind(prefix: &str) -> Option<EntityKind> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => EntityKind::Metric,
        "param" | "params" | "parameter" | "parameters" => EntityKind::Param,
        "tag" | "tags" => EntityKind::Tag,
        "attribute" | "attributes" | "attr" | "run" => EntityKind::Attribute,
        "dataset" | "datasets" => EntityKind::Dataset,
        _ => return None,
    })
}

/// Parses a filter: clauses joined by `AND`. An empty filter is no clause.
pub fn parse_filter(input: &str) -> Result<Vec<Clause>> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Parser::new(input)?;
    let mut clauses = Vec::new();
    loop {
        let entity = p.entity()?;
        let op = p.comparator()?;
        let value = p.value(op)?;
        clauses.push(Clause { entity, op, value });
        match p.next() {
            None => break,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => continue,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(p.err("'OR' is not supported; use AND, or IN (...) for alternatives"));
            }
            Some(t) => return Err(p.err(format!("expected AND, found {t}"))),
        }
    }
    Ok(clauses)
}

/// Parses one `order_by` entry: `<identifier> [ASC|DESC]`.
pub fn parse_order_by(input: &str) -> Result<OrderBy> {
    let mut p = Parser::new(input)?;
    let entity = p.entity().map_err(|_| Error::invalid(format!("Invalid order_by clause '{input}'")))?;
    let ascending = match p.next() {
        None => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("ASC") => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("DESC") => false,
        Some(_) => return Err(Error::invalid(format!("Invalid order_by clause '{input}': expected ASC or DESC"))),
    };
    if p.next().is_some() {
        return Err(Error::invalid(format!("Invalid order_by clause '{input}'")));
    }
    Ok(OrderBy { entity, ascending })
}

/// The attributes of a run that filters and sorts may name, and their type.
pub fn run_attribute(key: &str) -> Option<(&'static str, bool)> {
    // (canonical name, numeric)
    Some(match key {
        "run_id" | "run_uuid" | "id" => ("run_id", false),
        "run_name" | "name" => ("run_name", false),
        "status" => ("status", false),
        "user_id" => ("user_id", false),
        "artifact_uri" => ("artifact_uri", false),
        "lifecycle_stage" => ("lifecycle_stage", false),
        "experiment_id" => ("experiment_id", false),
        "start_time" | "created" | "Created" => ("start_time", true),
        "end_time" => ("end_time", true),
        _ => return None,
    })
}

/// Checks a run-search clause's types: metrics compare to numbers, params and
/// tags to strings, attributes by their type.
pub fn check_run_clause(c: &Clause) -> Result<()> {
    let bad = |what: &str| {
        Err(Error::invalid(format!("Invalid comparator '{}' or value for {what} '{}'", c.op.sql(), c.entity.key)))
    };
    match c.entity.kind {
        EntityKind::Metric => match (&c.value, c.op.is_numeric()) {
            (Value::Num(_), true) => Ok(()),
            _ => bad("metric"),
        },
        EntityKind::Param | EntityKind::Tag => match (&c.value, c.op) {
            (Value::Str(_), op) if op.is_string() => Ok(()),
            (Value::List(_), Comparator::In | Comparator::NotIn) => Ok(()),
            (Value::None, Comparator::IsNull | Comparator::IsNotNull) => Ok(()),
            _ => bad(if c.entity.kind == EntityKind::Param { "param" } else { "tag" }),
        },
        EntityKind::Dataset => match (c.entity.key.as_str(), &c.value, c.op) {
            ("name" | "digest" | "context", Value::Str(_), op) if op.is_string() => Ok(()),
            ("name" | "digest" | "context", Value::List(_), Comparator::In | Comparator::NotIn) => Ok(()),
            _ => bad("dataset attribute"),
        },
        EntityKind::Attribute => {
            let Some((_, numeric)) = run_attribute(&c.entity.key) else {
                return Err(Error::invalid(format!(
                    "Invalid attribute key '{}' specified. Valid keys are run_id, run_name, status, user_id, artifact_uri, lifecycle_stage, start_time, end_time",
                    c.entity.key
                )));
            };
            match (&c.value, numeric) {
                (Value::Num(_), true) if c.op.is_numeric() => Ok(()),
                (Value::Str(_), false) if c.op.is_string() => Ok(()),
                (Value::List(_), false) if matches!(c.op, Comparator::In | Comparator::NotIn) => Ok(()),
                _ => bad("attribute"),
            }
        }
    }
}

/// The attributes of a logged model that filters and sorts may name:
/// (canonical name, numeric).
pub fn logged_model_attribute(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "model_id" => ("model_id", false),
        "name" => ("name", false),
        "model_type" => ("model_type", false),
        "status" => ("status", false),
        "source_run_id" => ("source_run_id", false),
        "experiment_id" => ("experiment_id", false),
        "artifact_location" => ("artifact_location", false),
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => ("creation_timestamp", true),
        "last_updated_timestamp" | "last_updated_time" | "last_updated_timestamp_ms" => {
            ("last_updated_timestamp", true)
        }
        _ => return None,
    })
}

/// Checks a logged-model-search clause, as MLflow does: metrics and numeric
/// attributes take `< <= > >= = !=` and a number; params, tags and string
/// attributes take `= != LIKE ILIKE` (attributes also `IN`, `NOT IN`).
pub fn check_logged_model_clause(c: &Clause) -> Result<()> {
    let bad = |what: &str| {
        Err(Error::invalid(format!(
            "Invalid comparison operator '{}' or value for {what} '{}'",
            c.op.sql(),
            c.entity.key
        )))
    };
    match c.entity.kind {
        EntityKind::Metric => match (&c.value, c.op.is_numeric()) {
            (Value::Num(_), true) => Ok(()),
            _ => bad("metric"),
        },
        EntityKind::Param | EntityKind::Tag => match (&c.value, c.op) {
            (Value::Str(_), Comparator::Eq | Comparator::Ne | Comparator::Like | Comparator::ILike) => Ok(()),
            _ => bad(if c.entity.kind == EntityKind::Param { "param" } else { "tag" }),
        },
        EntityKind::Dataset => Err(Error::invalid(format!(
            "Invalid entity type 'datasets' in logged model filter; pass datasets in the request's `datasets` field \
             (clause on '{}')",
            c.entity.key
        ))),
        EntityKind::Attribute => {
            let Some((_, numeric)) = logged_model_attribute(&c.entity.key) else {
                return Err(Error::invalid(format!(
                    "Invalid logged model search key '{}'. Valid attributes are name, model_id, model_type, status, \
                     source_run_id, creation_timestamp, last_updated_timestamp",
                    c.entity.key
                )));
            };
            match (&c.value, numeric, c.op) {
                (Value::Num(_), true, op) if op.is_numeric() => Ok(()),
                (Value::Str(_), false, Comparator::Eq | Comparator::Ne | Comparator::Like | Comparator::ILike) => {
                    Ok(())
                }
                (Value::List(_), false, Comparator::In | Comparator::NotIn) => Ok(()),
                _ => bad("attribute"),
            }
        }
    }
}

/// What a logged-model `order_by` entry sorts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedModelSortKey {
    /// A canonical attribute name from [`logged_model_attribute`].
    Attribute(&'static str),
    /// The latest value of a metric linked to the model.
    Metric(String),
}

/// Parses a logged-model `order_by` field name: an attribute, or
/// `metrics.<key>` (MLflow sorts logged models by nothing else).
pub fn parse_logged_model_sort_key(field_name: &str) -> Result<LoggedModelSortKey> {
    let field = field_name.trim();
    if let Some((entity, key)) = field.split_once('.') {
        if entity != "metrics" || key.is_empty() {
            return Err(Error::invalid(format!(
                "Invalid order by field name: {field_name}. Only attributes and `metrics.<name>` are supported."
            )));
        }
        return Ok(LoggedModelSortKey::Metric(key.trim_matches('`').to_string()));
    }
    logged_model_attribute(field)
        .map(|(name, _)| LoggedModelSortKey::Attribute(name))
        .ok_or_else(|| Error::invalid(format!("Invalid order by field name: {field_name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_sentences() {
        for (filter, says) in [
            ("metrics.x >", "expected a value, found the end of the filter"),
            ("metrics.x 3", "invalid comparator '3'"),
            ("metrics.x > 1 metrics.y < 2", "expected AND, found 'metrics.y'"),
            ("> 3", "expected an identifier such as metrics.<key>, found '>'"),
        ] {
            let e = parse_filter(filter).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("Some(") && !e.contains("Op("), "{filter}: {e}");
        }
    }

    fn one(input: &str) -> Clause {
        let mut v = parse_filter(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(v.len(), 1, "{input}");
        v.remove(0)
    }

    fn check(input: &str, kind: EntityKind, key: &str, op: Comparator, value: Value) {
        let c = one(input);
        assert_eq!(c.entity, Entity { kind, key: key.into() }, "{input}");
        assert_eq!(c.op, op, "{input}");
        assert_eq!(c.value, value, "{input}");
    }

    #[test]
    fn parses_clauses() {
        use Comparator::*;
        use EntityKind::*;
        check("metrics.acc > 0.9", Metric, "acc", Gt, Value::Num(0.9));
        check("metric.acc<=-1e3", Metric, "acc", Le, Value::Num(-1000.0));
        check("params.algo = 'als'", Param, "algo", Eq, Value::Str("als".into()));
        check("params.algo != \"a'ls\"", Param, "algo", Ne, Value::Str("a'ls".into()));
        check("tags.mlflow.runName LIKE 'r%'", Tag, "mlflow.runName", Like, Value::Str("r%".into()));
        check("tags.`my tag` ILIKE '%X%'", Tag, "my tag", ILike, Value::Str("%X%".into()));
        check("metrics.\"my metric\" >= 2", Metric, "my metric", Ge, Value::Num(2.0));
        check("attributes.run_id IN ('a', 'b')", Attribute, "run_id", In, Value::List(vec!["a".into(), "b".into()]));
        check("attribute.status NOT IN ('FAILED')", Attribute, "status", NotIn, Value::List(vec!["FAILED".into()]));
        check("run_name = 'x'", Attribute, "run_name", Eq, Value::Str("x".into()));
        check("tags.t IS NULL", Tag, "t", IsNull, Value::None);
        check("params.p is not null", Param, "p", IsNotNull, Value::None);
    }

    #[test]
    fn parses_conjunctions() {
        let v = parse_filter("metrics.a > 1 and params.b = '2' AND tags.c != '3'").unwrap_or_default();
        assert_eq!(v.len(), 3);
        assert!(parse_filter("").unwrap_or_default().is_empty());
    }

    #[test]
    fn rejects_bad_filters() {
        for bad in [
            "metrics.a > 1 OR metrics.b > 2",
            "foo.bar = 1",
            "metrics.a >",
            "metrics.a = 'unterminated",
            "params.a = 1 params.b = 2",
            "metrics.a ~ 1",
            "params.a IN 'x'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn type_checks() {
        let ok = |s: &str| check_run_clause(&one(s)).is_ok();
        assert!(ok("metrics.a > 1"));
        assert!(!ok("metrics.a = 'x'"));
        assert!(!ok("metrics.a LIKE '1'"));
        assert!(ok("params.a LIKE 'x%'"));
        assert!(!ok("params.a > 1"));
        assert!(ok("attributes.start_time > 5"));
        assert!(!ok("attributes.start_time = 'x'"));
        assert!(!ok("attributes.nope = 'x'"));
        assert!(ok("datasets.name = 'd'"));
    }

    #[test]
    fn order_by() {
        let o = parse_order_by("metrics.acc DESC").ok();
        assert_eq!(
            o,
            Some(OrderBy { entity: Entity { kind: EntityKind::Metric, key: "acc".into() }, ascending: false })
        );
        assert_eq!(parse_order_by("start_time").map(|o| o.ascending).ok(), Some(true));
        assert!(parse_order_by("metrics.acc SIDEWAYS").is_err());
    }

    #[test]
    fn logged_model_clauses() {
        let ok = |s: &str| check_logged_model_clause(&one(s)).is_ok();
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
            parse_logged_model_sort_key("creation_time").ok(),
            Some(LoggedModelSortKey::Attribute("creation_timestamp"))
        );
        assert_eq!(parse_logged_model_sort_key("metrics.acc").ok(), Some(LoggedModelSortKey::Metric("acc".into())));
        assert!(parse_logged_model_sort_key("params.lr").is_err());
        assert!(parse_logged_model_sort_key("bogus").is_err());
    }
}
