//! The audit trail in PostgreSQL (the SQL is [`crate::plan`]'s, shared with SQLite).

use plinth_core::audit::{Action, AuditQuery, AuditRecord};
use plinth_core::usage::ActivityRow;

use super::{AUDIT_LOCK, Tx, col, db, exec, params};
use crate::plan::{self, activity_row};
use crate::{Error, Page, Result};

pub(crate) async fn append(tx: &Tx<'_>, r: &AuditRecord) -> Result<()> {
    // One append at a time, so `seq` follows the order of commits and a
    // reader paging by it never skips a record committed late.
    exec(tx, "SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK]).await.map_err(db)?;
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &r.time,
        &r.actor,
        &r.action.as_str(),
        &r.resource,
        &r.before,
        &r.after,
        &r.request_id,
        &r.workspace,
        &r.detail,
    ];
    tx.execute(&plan::INSERT_AUDIT.replace('?', "$"), &values).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn search(tx: &Tx<'_>, q: &AuditQuery) -> Result<Page<AuditRecord>> {
    let sql = plan::audit_search(q);
    let rows = tx.query(&sql.numbered(), &params(&sql)).await.map_err(db)?;
    let records = rows
        .iter()
        .map(|r| {
            let seq: i64 = col(r, 0)?;
            let action: String = col(r, 3)?;
            let action = Action::parse(&action)
                .ok_or_else(|| Error::Database(format!("audit record {seq}: stored action '{action}'")))?;
            Ok(AuditRecord {
                seq,
                time: col(r, 1)?,
                actor: col(r, 2)?,
                action,
                resource: col(r, 4)?,
                before: col(r, 5)?,
                after: col(r, 6)?,
                request_id: col(r, 7)?,
                workspace: col(r, 8)?,
                detail: col(r, 9)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::plan::audit_page(records, q.max_results))
}

pub(crate) async fn activity(tx: &Tx<'_>, since: i64) -> Result<Vec<ActivityRow>> {
    let rows = tx.query(&plan::AUDIT_ACTIVITY.replace('?', "$"), &[&since]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            let action: String = col(r, 2)?;
            activity_row(col(r, 0)?, col(r, 1)?, &action, col(r, 3)?, col(r, 4)?)
        })
        .collect()
}
