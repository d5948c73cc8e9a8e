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
