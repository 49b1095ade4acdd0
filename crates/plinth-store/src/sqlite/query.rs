//! A tiny SQL builder: text plus bound parameters in order. Values never
//! enter the SQL text.

use plinth_core::search::{Clause, Comparator, Value};
use rusqlite::types::Value as SqlValue;

use crate::Result;
use crate::error::invalid;

pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql { text: text.into(), params: Vec::new() }
    }
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    pub fn bind(&mut self, v: SqlValue) {
        self.params.push(v);
        self.text.push('?');
    }
    pub fn bind_str(&mut self, s: &str) {
        self.bind(SqlValue::Text(s.to_string()));
    }
    pub fn bind_i64(&mut self, n: i64) {
        self.bind(SqlValue::Integer(n));
    }
    pub fn bind_f64(&mut self, n: f64) {
        self.bind(SqlValue::Real(n));
    }
    /// `?, ?, ?` for each item.
    pub fn list(&mut self, items: impl IntoIterator<Item = String>) {
        let mut first = true;
        for item in items {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            self.bind(SqlValue::Text(item));
        }
        if first {
            // An empty IN list matches nothing.
            self.text.push_str("NULL");
        }
    }
}

/// ` AND <column> <op> <value>` for a string-valued clause.
pub(crate) fn string_clause(sql: &mut Sql, column: &str, clause: &Clause) -> Result<()> {
    match (&clause.value, clause.op) {
        (Value::Str(s), Comparator::Eq | Comparator::Ne | Comparator::Like) => {
            sql.push(&format!(" AND {column} {} ", clause.op.sql()));
            sql.bind_str(s);
        }
        (Value::Str(s), Comparator::ILike) => {
            sql.push(&format!(" AND LOWER({column}) LIKE LOWER("));
            sql.bind_str(s);
            sql.push(")");
        }
        (Value::List(items), Comparator::In | Comparator::NotIn) => {
            sql.push(&format!(" AND {column} {} (", clause.op.sql()));
            sql.list(items.iter().cloned());
            sql.push(")");
        }
        _ => {
            return invalid(format!("Invalid comparator '{}' or value for '{}'", clause.op.sql(), clause.entity.key));
        }
    }
    Ok(())
}
