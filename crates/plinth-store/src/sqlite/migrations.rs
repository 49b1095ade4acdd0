//! Numbered schema migrations, applied in order on open, each in its own
//! transaction and recorded in `schema_migrations`.

use rusqlite::{Connection, OptionalExtension};

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
    (12, include_str!("../../migrations/0012_workspaces.sql")),
    (13, include_str!("../../migrations/0013_deployment_mode.sql")),
    (14, include_str!("../../migrations/0014_policies.sql")),
    (15, include_str!("../../migrations/0015_clustered_runs.sql")),
];

/// A migration that rebuilds a table other tables refer to starts with this
/// line: it runs with foreign keys off (SQLite's twelve-step procedure; the
/// pragma cannot change inside a transaction), and they are checked before it commits.
const FOREIGN_KEYS_OFF: &str = "-- plinth:foreign-keys-off";

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
        let rebuilds = sql.starts_with(FOREIGN_KEYS_OFF);
        if rebuilds {
            conn.pragma_update(None, "foreign_keys", "OFF")?;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if rebuilds {
            let broken: Option<String> = tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional()?;
            if let Some(table) = broken {
                return Err(crate::Error::Database(format!(
                    "migration {version} left a broken reference in table {table}"
                )));
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, plinth_core::ids::now_ms()],
        )?;
        tx.commit()?;
        if rebuilds {
            conn.pragma_update(None, "foreign_keys", "ON")?;
        }
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database with foreign keys on, migrated up to `version`
    /// and recorded so, as a release of that version left it.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .unwrap();
        for (version, sql) in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version]).unwrap();
        }
        conn
    }

    #[test]
    fn metrics_move_to_their_clustered_table_and_duplicates_collapse() {
        let mut conn = at_version(3);
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

    #[test]
    fn workspaces_keep_every_row_and_every_reference() {
        let mut conn = at_version(11);
        conn.execute_batch(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                      last_update_time) VALUES (1, 'e', 'a', 'active', 0, 0);
             INSERT INTO experiment_tags VALUES (1, 'k', 'v');
             INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri,
                               lifecycle_stage) VALUES ('r1', 'r', 1, 'u', 'RUNNING', 0, 'a', 'active');
             INSERT INTO registered_models VALUES ('m', 1, 2, 'd');
             INSERT INTO registered_model_tags VALUES ('m', 'k', 'v');
             INSERT INTO model_versions (name, version, creation_time, last_updated_time, current_stage, source,
                                         status, storage_location) VALUES ('m', 1, 1, 1, 'None', 's', 'READY', 's');
             INSERT INTO model_version_tags VALUES ('m', 1, 'k', 'v');
             INSERT INTO registered_model_aliases VALUES ('m', 'champion', 1);",
        )
        .unwrap();
        apply(&mut conn).unwrap();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        for table in [
            "experiments",
            "registered_models",
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
        ] {
            assert_eq!(count(&format!("SELECT COUNT(*) FROM {table} WHERE workspace = 'default'")), 1, "{table}");
        }
        assert_eq!(count("SELECT COUNT(*) FROM runs r JOIN experiments e USING (experiment_id)"), 1);
        assert_eq!(count("SELECT foreign_keys FROM pragma_foreign_keys"), 1, "foreign keys are on again");
        // The same names in another workspace; references still hold.
        conn.execute_batch(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                      last_update_time, workspace) VALUES (2, 'e', 'a', 'active', 0, 0, 'team-a');
             INSERT INTO registered_models (workspace, name, creation_time, last_updated_time) VALUES ('team-a', 'm', 1, 1);",
        )
        .unwrap();
        assert!(conn.execute("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri, lifecycle_stage) VALUES ('r2', 'r', 9, 'u', 'RUNNING', 0, 'a', 'active')", []).is_err());
        assert!(
            conn.execute(
                "INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES ('team-b', 'm', 'x', 1)",
                []
            )
            .is_err()
        );
        assert!(conn.execute("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, workspace) VALUES (3, 'e', 'a', 'active', 0, 0, 'team-a')", []).is_err());
    }

    #[test]
    fn run_tables_become_clustered_and_keep_every_row_and_reference() {
        let mut conn = at_version(14);
        conn.execute_batch(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                      last_update_time) VALUES (1, 'e', 'a', 'active', 0, 0);
             INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri,
                               lifecycle_stage, deleted_time)
                 VALUES ('r1', 'r', 1, 'u', 'FINISHED', 5, 9, 'a/r1', 'deleted', 10),
                        ('r2', 's', 1, 'u', 'RUNNING', 6, NULL, 'a/r2', 'active', NULL);
             INSERT INTO params VALUES ('r1', 'lr', '0.1'), ('r2', 'lr', '0.2');
             INSERT INTO tags VALUES ('r1', 'mlflow.runName', 'r');
             INSERT INTO latest_metrics VALUES ('r1', 'loss', 0.5, 0, 10, 3), ('r2', 'loss', 0.0, 1, 11, 4);
             INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES ('r1', 'loss', 0.5, 0, 10, 3);",
        )
        .unwrap();
        apply(&mut conn).unwrap();
        let all = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| {
                    let n = r.as_ref().column_count();
                    let cells = (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(cells.join("|"))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(
            all("SELECT * FROM runs ORDER BY run_uuid"),
            vec![
                r#"Text("r1")|Text("r")|Integer(1)|Text("u")|Text("FINISHED")|Integer(5)|Integer(9)|Text("a/r1")|Text("deleted")|Integer(10)"#,
                r#"Text("r2")|Text("s")|Integer(1)|Text("u")|Text("RUNNING")|Integer(6)|Null|Text("a/r2")|Text("active")|Null"#,
            ]
        );
        assert_eq!(all("SELECT run_uuid, key, value FROM params ORDER BY run_uuid").len(), 2);
        assert_eq!(all("SELECT * FROM tags").len(), 1);
        assert_eq!(
            all("SELECT * FROM latest_metrics ORDER BY run_uuid"),
            vec![
                r#"Text("r1")|Text("loss")|Real(0.5)|Integer(0)|Integer(10)|Integer(3)"#,
                r#"Text("r2")|Text("loss")|Real(0.0)|Integer(1)|Integer(11)|Integer(4)"#,
            ]
        );
        for table in ["runs", "params", "tags", "latest_metrics"] {
            let sql: String = conn
                .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
                .unwrap();
            assert!(sql.ends_with("WITHOUT ROWID"), "{table}: {sql}");
        }
        assert_eq!(
            all("SELECT foreign_keys FROM pragma_foreign_keys"),
            vec!["Integer(1)"],
            "foreign keys are on again"
        );
        // References still hold, both ways.
        assert!(conn.execute("INSERT INTO params VALUES ('nope', 'k', 'v')", []).is_err());
        assert!(conn.execute("INSERT INTO latest_metrics VALUES ('nope', 'k', 1, 0, 1, 1)", []).is_err());
        assert!(conn.execute("DELETE FROM runs WHERE run_uuid = 'r1'", []).is_err(), "metrics still refer to r1");
        assert!(
            conn.execute("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri, lifecycle_stage) VALUES ('r3', 'r', 9, 'u', 'RUNNING', 0, 'a', 'active')", [])
                .is_err()
        );
        // A metric-ordered search walks the (key, is_nan, value) index alone and looks runs up by their key.
        let plan = all(
            "EXPLAIN QUERY PLAN SELECT r.run_uuid FROM latest_metrics o0 CROSS JOIN runs r ON r.run_uuid = o0.run_uuid
             WHERE o0.key = 'loss' AND o0.is_nan = 0 ORDER BY o0.value DESC",
        )
        .join("\n");
        assert!(plan.contains("COVERING INDEX latest_metrics_by_key"), "{plan}");
        assert!(plan.contains("SEARCH r USING PRIMARY KEY"), "{plan}");
    }
}
