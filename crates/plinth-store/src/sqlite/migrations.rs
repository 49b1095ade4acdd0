//! Numbered schema migrations, applied in order on open, each in its own
//! transaction and recorded in `schema_migrations`.

use rusqlite::Connection;

use crate::Result;

/// (version, SQL). Append only: never edit a shipped migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_jobs.sql")),
    (3, include_str!("../../migrations/0003_deployments.sql")),
    (4, include_str!("../../migrations/0004_metrics_by_key.sql")),
    (5, include_str!("../../migrations/0005_dataset_context.sql")),
    (6, include_str!("../../migrations/0006_job_leases.sql")),
    (7, include_str!("../../migrations/0007_serving_counters.sql")),
    (8, include_str!("../../migrations/0008_users_tokens.sql")),
    (9, include_str!("../../migrations/0009_audit.sql")),
    (10, include_str!("../../migrations/0010_serving_keys.sql")),
    (11, include_str!("../../migrations/0011_roles.sql")),
];

pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        // Some rewrite a table (0004 copies every metric): say so before, not only after.
        tracing::info!(version, "applying schema migration (a large database may take a while)");
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, plinth_core::ids::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_move_to_their_clustered_table_and_duplicates_collapse() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .unwrap();
        for (version, sql) in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version]).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                      last_update_time) VALUES (1, 'e', 'a', 'active', 0, 0);
             INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri,
                               lifecycle_stage) VALUES ('r1', 'r', 1, 'u', 'RUNNING', 0, 'a', 'active');
             INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES
                 ('r1', 'loss', 0.5, 0, 10, 0), ('r1', 'loss', 0.5, 0, 10, 0), ('r1', 'loss', 0.4, 0, 11, 1);
             INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step, model_id) VALUES
                 ('r1', 'acc', 0.9, 0, 12, 0, 'm-1');",
        )
        .unwrap();
        apply(&mut conn).unwrap();
        let rows: Vec<(String, f64, i64)> = conn
            .prepare("SELECT key, value, step FROM metrics ORDER BY key, step")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![("acc".into(), 0.9, 0), ("loss".into(), 0.5, 0), ("loss".into(), 0.4, 1)]);
        let model: String = conn.query_row("SELECT model_id FROM metrics WHERE key = 'acc'", [], |r| r.get(0)).unwrap();
        assert_eq!(model, "m-1");
        // Still tied to its run, and still indexed by model.
        let orphan = conn.execute(
            "INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step)
                                   VALUES ('nope', 'k', 1, 0, 1, 1)",
            [],
        );
        assert!(orphan.is_err());
        let plan: String = conn
            .query_row("EXPLAIN QUERY PLAN SELECT * FROM metrics WHERE model_id = 'm-1'", [], |r| r.get(3))
            .unwrap();
        assert!(plan.contains("metrics_by_model"), "{plan}");
    }
}
