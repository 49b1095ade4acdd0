//! The audit trail in SQLite (the SQL is [`crate::plan`]'s, shared with PostgreSQL).

use plinth_core::audit::{Action, AuditQuery, AuditRecord};
use plinth_core::usage::ActivityRow;
use rusqlite::{Connection, Row, params};

use crate::plan::{self, activity_row};
use crate::{Error, Page, Result};

pub(crate) fn append(conn: &Connection, r: &AuditRecord) -> Result<()> {
    conn.prepare_cached(plan::INSERT_AUDIT)?.execute(params![
        r.time,
        r.actor,
        r.action.as_str(),
        r.resource,
        r.before,
        r.after,
        r.request_id,
        r.workspace,
        r.detail
    ])?;
    Ok(())
}

type AuditRow =
    (i64, i64, String, String, String, Option<String>, Option<String>, Option<String>, String, Option<String>);

fn row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

pub(crate) fn search(conn: &Connection, q: &AuditQuery) -> Result<Page<AuditRecord>> {
    let sql = plan::audit_search(q);
    let mut stmt = conn.prepare(&sql.text)?;
    let rows =
        stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let records = rows
        .into_iter()
        .map(|(seq, time, actor, action, resource, before, after, request_id, workspace, detail)| {
            let action = Action::parse(&action)
                .ok_or_else(|| Error::Database(format!("audit record {seq}: stored action '{action}'")))?;
            Ok(AuditRecord { seq, time, actor, action, resource, before, after, request_id, workspace, detail })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(plan::audit_page(records, q.max_results))
}

pub(crate) fn activity(conn: &Connection, since: i64) -> Result<Vec<ActivityRow>> {
    let mut stmt = conn.prepare_cached(plan::AUDIT_ACTIVITY)?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(day, actor, action, count, workspace)| activity_row(day, actor, &action, count, workspace))
        .collect()
}
