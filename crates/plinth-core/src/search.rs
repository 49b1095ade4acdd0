//! MLflow's search grammar: `metrics.acc > 0.9 AND params.algo = 'als'` and
//! `order_by` clauses such as `metrics.acc DESC`.
//!
//! Parsing yields a generic AST; [`crate::query`] turns it into the typed
//! clauses one entity's search accepts.

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
    /// As written in a filter, for messages.
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
    fn order_by() {
        let o = parse_order_by("metrics.acc DESC").ok();
        assert_eq!(
            o,
            Some(OrderBy { entity: Entity { kind: EntityKind::Metric, key: "acc".into() }, ascending: false })
        );
        assert_eq!(parse_order_by("start_time").map(|o| o.ascending).ok(), Some(true));
        assert!(parse_order_by("metrics.acc SIDEWAYS").is_err());
    }
}
