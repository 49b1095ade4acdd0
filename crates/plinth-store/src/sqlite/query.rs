//! A tiny SQL builder: text plus bound parameters in order. Values never
//! enter the SQL text.

use plinth_core::query::{NumOp, TextMatch};
use rusqlite::types::Value as SqlValue;

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
pub(crate) fn number_clause(sql: &mut Sql, column: &str, op: NumOp, value: SqlValue) {
    sql.push(&format!(" AND {column} {} ", op.sql()));
    sql.bind(value);
}
