//! Schema migrations: numbered SQL files embedded in the binary, applied in one transaction, with
//! `PRAGMA user_version` recording how many have run.

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

/// Every migration, in order. The schema version is the number of entries applied.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_branches.sql"),
    include_str!("../../migrations/0003_out_dir.sql"),
    include_str!("../../migrations/0004_arrivals.sql"),
    include_str!("../../migrations/0005_batches.sql"),
    include_str!("../../migrations/0006_provenance.sql"),
];

pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Brings the database up to this binary's schema and marks it as peel's, in one transaction; refuses a database
/// written by a newer peel. A migration that clashes with what the file holds (a table of the same name) is reported
/// by name, without SQL, and changes nothing.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let target = MIGRATIONS.len() as i64;
    let version = schema_version(conn)?;
    if version > target {
        bail!(
            "this database has schema version {version}, newer than this peel understands ({target}): \
             upgrade peel, or use another database with --db"
        );
    }
    let marked: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if version == target && marked == super::open::APPLICATION_ID {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(|e| {
            anyhow::anyhow!(
                "it could not be brought up to date: step {} of peel's schema clashes with what the file holds \
                 ({}); nothing was changed",
                index + 1,
                super::open::sqlite_message(&e)
            )
        })?;
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.pragma_update(None, "application_id", super::open::APPLICATION_ID)?;
    tx.commit().context("saving the schema")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_the_latest_schema_and_stays_there() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len() as i64);
        migrate(&mut conn).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sessions'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer than this peel"), "{err}");
    }

    /// 5 -> 6: model contents learn who made them (offline by their model version, else the API), hand-made ones
    /// stay unknown, and contents get a column for their own unknown fields.
    #[test]
    fn provenance_is_filled_in_from_what_was_recorded() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        let metas = [
            ("user", "{}"),
            (
                "model",
                r#"{"settings":{"model":"gemini-3-pro-image"},"model_version":"gemini-3-pro-image"}"#,
            ),
            (
                "model",
                r#"{"settings":{"model":"gemini-2.5-flash-image"},"model_version":"gemini-2.5-flash-image-offline"}"#,
            ),
            ("model", r#"{"finish_reason":"STOP"}"#),
            ("model", "not json"),
        ];
        for (i, (role, meta)) in metas.iter().enumerate() {
            conn.execute(
                "INSERT INTO contents (id, parent_id, depth, role, parts, meta, created_at)
                 VALUES (?1, NULL, 0, ?2, '[]', ?3, 0)",
                rusqlite::params![i as i64 + 1, role, meta],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let made_by = |id: i64| -> Option<String> {
            conn.query_row(
                "SELECT CASE WHEN json_valid(meta) THEN json_extract(meta, '$.made_by.backend') END
                 FROM contents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(made_by(1), None, "a user content");
        assert_eq!(made_by(2).as_deref(), Some("api"));
        assert_eq!(made_by(3).as_deref(), Some("offline"));
        assert_eq!(made_by(4), None, "no model recorded: not known");
        assert_eq!(made_by(5), None, "a damaged meta is left as it is");
        let meta: String = conn
            .query_row("SELECT meta FROM contents WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        let meta: crate::store::TurnMeta = serde_json::from_str(&meta).unwrap();
        assert_eq!(
            meta.made_by,
            Some(crate::gemini::signatures::MadeBy::Api { provider: None })
        );
        let extra: Option<String> = conn
            .query_row("SELECT extra FROM contents WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(extra, None);
    }

    /// Every upgrade path: a database at each earlier version (with data) migrates to the latest.
    #[test]
    fn every_upgrade_path_keeps_data() {
        for start in 1..MIGRATIONS.len() {
            let mut conn = Connection::open_in_memory().unwrap();
            for sql in &MIGRATIONS[..start] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", start as i64)
                .unwrap();
            conn.execute("INSERT INTO sessions (name, created_at, updated_at, used_at) VALUES ('s', 0, 0, 0)", [])
                .unwrap();
            migrate(&mut conn).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}
