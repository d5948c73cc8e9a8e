//! Faults around recording and opening: the journal of arrived answers, a database locked or changed by another
//! process mid-turn, and databases that are not peel's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::journal::{Arrival, ArrivalSession};
use super::*;
use crate::gemini::types::{Content, Part};

fn answer(seed: u8) -> Content {
    let mut image = Part::image("image/jpeg", STANDARD.encode(vec![seed; 4096]));
    image.thought_signature = Some(STANDARD.encode(vec![seed ^ 0xff; 4096]));
    Content {
        role: Some("model".into()),
        parts: vec![Part::text("here"), image],
        extra: Default::default(),
    }
}

fn arrival(session: &SessionRow, seed: u8) -> Arrival {
    Arrival {
        session: ArrivalSession {
            id: Some(session.id),
            name: session.name.clone(),
            created_at: Some(session.created_at),
            out_dir: None,
        },
        beside: false,
        decoded: None,
        expected_head: session.head_id,
        parent: session.head_id,
        user: Content::user(vec![Part::text(format!("prompt {seed}"))]),
        model: answer(seed),
        meta: TurnMeta {
            settings: Some(session.settings.clone()),
            finish_reason: "STOP".into(),
            ..TurnMeta::default()
        },
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("peel.db")
}

fn turns(store: &Store, name: &str) -> usize {
    let head = store.session(name).unwrap().unwrap().head_id;
    store.chain(head).unwrap().len() / 2
}

#[test]
fn an_entry_is_written_durably_read_back_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&db(dir.path())).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    assert_eq!(journal.dir(), dir.path().join("peel.db.arrived"));
    let arrival = arrival(&fox, 1);
    let entry = journal.write(&arrival).unwrap();
    let listed = journal.pending().unwrap();
    assert_eq!(listed.entries, vec![entry.clone()]);
    assert_eq!(entry.header.prompt, "prompt 1");
    assert_eq!(journal.read(&entry).unwrap(), arrival);

    let recorded = store.record_arrival(entry.id(), &arrival).unwrap();
    assert_eq!(recorded.placement, Placement::Head);
    assert_eq!(recorded.appended.turn, 1);
    // A second peel (or this one after a crash before removing the file) records nothing twice.
    let again = store.record_arrival(entry.id(), &arrival).unwrap();
    assert_eq!(again.placement, Placement::AlreadyRecorded);
    assert_eq!(again.appended.model_id, recorded.appended.model_id);
    let report = store.recover_arrivals().unwrap();
    assert_eq!(report.recorded.len(), 1);
    assert_eq!(report.recorded[0].1.placement, Placement::AlreadyRecorded);
    assert!(
        journal.pending().unwrap().entries.is_empty(),
        "removed once recorded"
    );
    assert_eq!(turns(&store, "fox"), 1);
    assert_eq!(
        store
            .parts(&store.chain(recorded.session.head_id).unwrap()[1])
            .unwrap(),
        answer(1).parts
    );
}

#[test]
fn a_turn_that_cannot_be_recorded_stays_in_the_journal_and_is_recovered_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let mut store = Store::open(&path).unwrap();
    store.conn.busy_timeout(Duration::from_millis(200)).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    let arrival = arrival(&fox, 2);
    let entry = journal.write(&arrival).unwrap();

    // Another program holds the write lock past the busy timeout.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = store.record_arrival(entry.id(), &arrival).unwrap_err();
    let explained = store.explain(&error).unwrap();
    assert!(
        explained.contains("is locked by another program") && explained.contains("peel.db"),
        "{explained}"
    );
    assert_eq!(
        journal.pending().unwrap().entries.len(),
        1,
        "the answer is still kept"
    );
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    drop(store);

    // The next peel records it.
    let mut store = Store::open(&path).unwrap();
    let report = store.recover_arrivals().unwrap();
    assert_eq!(report.recorded.len(), 1, "{:?}", report.lines());
    assert!(
        report.lines()[0].contains("turn 1 of session fox"),
        "{:?}",
        report.lines()
    );
    assert_eq!(turns(&store, "fox"), 1);
    assert!(journal.pending().unwrap().entries.is_empty());
}

#[test]
fn a_session_deleted_or_moved_meanwhile_gets_the_turn_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let mut store = Store::open(&path).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let first = store.record_arrival("e1", &arrival(&fox, 1)).unwrap();
    let fox = first.session.clone();

    // Another peel moves the head: the turn becomes a branch.
    let late = arrival(&store.session("fox").unwrap().unwrap(), 2);
    store.record_arrival("e2", &arrival(&fox, 3)).unwrap();
    let moved = store.record_arrival("e3", &late).unwrap();
    assert_eq!(moved.placement, Placement::Branched { from: "fox".into() });
    assert_eq!(moved.session.name, "fox~2");

    // Another peel deletes the session mid-turn: the turn goes to a new session, under the history if it is kept.
    let dusk = store
        .branch_session(&fox, "dusk", fox.head_id, &fox.settings)
        .unwrap();
    let pending = arrival(&dusk, 4);
    let mut other = Store::open(&path).unwrap();
    let id = other.session("dusk").unwrap().unwrap().id;
    other.delete_session(id).unwrap();
    let recreated = store.record_arrival("e4", &pending).unwrap();
    assert_eq!(
        recreated.placement,
        Placement::Recreated {
            was: "dusk".into(),
            parent_kept: true
        }
    );
    assert_eq!(recreated.session.name, "dusk");
    assert_eq!(
        recreated.appended.turn, 2,
        "continues the history it was asked on"
    );

    // A session id reused by a new session after a delete is not mistaken for the old one.
    let mut gone = store
        .create_session("gone", NewSession::empty(&Settings::default()))
        .unwrap();
    let stale = arrival(&gone, 5);
    other.delete_session(gone.id).unwrap();
    // Sessions are told apart by id and creation time (milliseconds).
    std::thread::sleep(Duration::from_millis(5));
    gone = other
        .create_session("newcomer", NewSession::empty(&Settings::default()))
        .unwrap();
    let landed = store.record_arrival("e5", &stale).unwrap();
    assert!(
        matches!(landed.placement, Placement::Recreated { .. }),
        "{:?}",
        landed.placement
    );
    assert_eq!(landed.session.name, "gone");
    assert_eq!(turns(&store, "newcomer"), 0, "{gone:?} got nothing");
}

#[test]
fn damaged_entries_are_kept_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&db(dir.path())).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    let good = journal.write(&arrival(&fox, 1)).unwrap();
    let cut = journal.write(&arrival(&fox, 2)).unwrap();
    let bytes = std::fs::read(&cut.path).unwrap();
    std::fs::write(&cut.path, &bytes[..bytes.len() - 10]).unwrap();
    let flipped = journal.write(&arrival(&fox, 3)).unwrap();
    let mut bytes = std::fs::read(&flipped.path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    std::fs::write(&flipped.path, &bytes).unwrap();
    std::fs::write(
        journal.dir().join("0000000000000-garbage.json"),
        b"\x00\x01 not json",
    )
    .unwrap();
    std::fs::write(journal.dir().join("0000000000001-huge.json"), {
        let mut header = serde_json::to_vec(&serde_json::json!({
            "format": "peel-arrived", "version": 1, "id": "x", "created_at": 0, "session_name": "fox",
            "prompt": "", "body_bytes": u64::MAX, "body_sha256": ""
        }))
        .unwrap();
        header.push(b'\n');
        header
    })
    .unwrap();

    let report = store.recover_arrivals().unwrap();
    assert_eq!(report.recorded.len(), 1);
    assert_eq!(report.recorded[0].0.id(), good.id());
    assert_eq!(report.damaged.len(), 4, "{:?}", report.lines());
    for damaged in &report.damaged {
        assert!(damaged.kept_at.starts_with(journal.dir().join("damaged")));
        assert!(damaged.kept_at.exists(), "kept, never deleted");
    }
    assert!(journal.pending().unwrap().entries.is_empty());
    assert_eq!(turns(&store, "fox"), 1);
}

#[test]
fn the_journal_never_follows_a_planted_link_and_never_replaces_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    let entry = journal.write(&arrival(&fox, 1)).unwrap();
    let before = std::fs::read(&entry.path).unwrap();
    // Entries are named by time and 64 random bits: two writes never meet.
    let other = journal.write(&arrival(&fox, 1)).unwrap();
    assert_ne!(entry.path, other.path);
    assert_eq!(std::fs::read(&entry.path).unwrap(), before);
    #[cfg(unix)]
    {
        std::fs::remove_file(&other.path).unwrap();
        let target = dir.path().join("outside");
        std::os::unix::fs::symlink(&target, &other.path).unwrap();
        // A link where an entry was is set aside when listed, never read through.
        let listing = journal.pending().unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.damaged.len(), 1, "{:?}", listing.damaged);
        assert!(!target.exists());
    }
}

// ---- opening only peel's own databases ----

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn foreign_databases_are_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "other-tables.db",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'x');",
        ),
        (
            "collision.db",
            "CREATE TABLE sessions (who TEXT); INSERT INTO sessions VALUES ('me');",
        ),
        (
            "other-app.db",
            "PRAGMA application_id = 1234; CREATE TABLE t (x);",
        ),
        (
            "versioned.db",
            "PRAGMA user_version = 3; CREATE TABLE t (x);",
        ),
    ];
    for (name, sql) in cases {
        let path = dir.path().join(name);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let before = file_bytes(&path);
        let error = format!("{:#}", Store::open(&path).err().unwrap());
        assert!(
            error.contains("another program") && error.contains("changed nothing"),
            "{name}: {error}"
        );
        assert!(!error.contains("CREATE"), "no SQL in the message: {error}");
        assert_eq!(file_bytes(&path), before, "{name} was changed");
        assert!(
            !dir.path().join(format!("{name}-wal")).exists(),
            "{name} switched to WAL"
        );
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, long enough to look like a header").unwrap();
    let error = format!("{:#}", Store::open(&text).err().unwrap());
    assert!(error.contains("not a SQLite database"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "just some text, long enough to look like a header"
    );
}

#[test]
fn a_future_schema_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 999;")
        .unwrap();
    drop(conn);
    let before = file_bytes(&path);
    let error = format!("{:#}", Store::open(&path).err().unwrap());
    assert!(
        error.contains("newer peel") && error.contains("999"),
        "{error}"
    );
    assert_eq!(file_bytes(&path), before);
    assert!(
        !dir.path().join("peel.db-wal").exists(),
        "not switched to WAL first"
    );
}

#[test]
fn an_older_peel_database_is_marked_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in &migrate::MIGRATIONS[..2] {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch("PRAGMA user_version = 2; INSERT INTO sessions (name, created_at, updated_at, used_at) VALUES ('old', 0, 0, 0);").unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert!(store.session("old").unwrap().is_some());
    let id: i32 = store
        .conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, open::APPLICATION_ID);
}

#[test]
fn a_schema_clash_is_named_without_sql_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(migrate::MIGRATIONS[0]).unwrap();
    // Someone added a column the next step adds too.
    conn.execute_batch("ALTER TABLE contents ADD COLUMN session_id TEXT; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let error = format!("{:#}", Store::open(&path).err().unwrap());
    assert!(
        error.contains("clashes") && error.contains("duplicate column"),
        "{error}"
    );
    assert!(!error.contains("ALTER TABLE"), "{error}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "the upgrade is one transaction");
}

/// A read-only view of `dir`: a read-only bind mount when running as root (root ignores file modes), else the
/// folder's and the database's write bits removed. `None` when neither can be made here.
#[cfg(unix)]
struct ReadOnlyView {
    path: PathBuf,
    mounted: bool,
}

#[cfg(unix)]
impl ReadOnlyView {
    fn new(dir: &Path, view: &Path) -> Option<ReadOnlyView> {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            std::fs::set_permissions(dir.join("peel.db"), std::fs::Permissions::from_mode(0o444))
                .ok()?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).ok()?;
            return Some(ReadOnlyView {
                path: dir.to_path_buf(),
                mounted: false,
            });
        }
        std::fs::create_dir_all(view).ok()?;
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let (from, to) = (dir.to_str()?, view.to_str()?);
        if !run(&["--bind", from, to]) {
            return None;
        }
        let view = ReadOnlyView {
            path: view.to_path_buf(),
            mounted: true,
        };
        run(&["-o", "remount,ro,bind", to]).then_some(view)
    }
}

#[cfg(unix)]
impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(&self.path)
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755));
            let _ = std::fs::set_permissions(
                self.path.join("peel.db"),
                std::fs::Permissions::from_mode(0o644),
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_database_opens_for_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        let mut store = Store::open(&db(&data)).unwrap();
        let fox = store
            .create_session("fox", NewSession::empty(&Settings::default()))
            .unwrap();
        store.record_arrival("e", &arrival(&fox, 1)).unwrap();
    }
    let Some(view) = ReadOnlyView::new(&data, &dir.path().join("view")) else {
        eprintln!("skipped: no read-only view can be made here");
        return;
    };
    let path = db(&view.path);
    let mut store = Store::open(&path).unwrap();
    assert!(
        store.read_only().unwrap().contains("read-only"),
        "{:?}",
        store.read_only()
    );
    assert_eq!(turns(&store, "fox"), 1);
    let fox = store.session("fox").unwrap().unwrap();
    assert_eq!(
        store.parts(&store.chain(fox.head_id).unwrap()[1]).unwrap(),
        answer(1).parts
    );
    assert!(store.blob_reader().is_ok());
    let error = store
        .record_arrival("f", &arrival(&fox, 2))
        .unwrap_err()
        .to_string();
    assert!(error.contains("nothing can be saved"), "{error}");
    assert!(store.recover_arrivals().unwrap().is_empty());
    drop(store);
    drop(view);
}

#[test]
fn generated_names_stay_within_the_rules() {
    let store = Store::open_in_memory().unwrap();
    let long = "a".repeat(64);
    let fox = store
        .create_session(&long, NewSession::empty(&Settings::default()))
        .unwrap();
    let branch = store.free_branch_name(&fox.name).unwrap();
    crate::names::validate_session_name(&branch).unwrap();
    store
        .branch_session(&fox, &branch, None, &fox.settings)
        .unwrap();
    let next = store.free_branch_name(&branch).unwrap();
    assert_ne!(next, branch);
    crate::names::validate_session_name(&next).unwrap();
    let free = store.free_name(&long).unwrap();
    assert!(free.len() <= 64 && free != long, "{free}");
    assert!(
        store
            .create_session("../x", NewSession::empty(&Settings::default()))
            .is_err()
    );
}

/// A peel killed while writing an entry leaves a `.writing-` file: once it is old, a whole one is recorded (killed
/// between the fsync and the rename) and a cut one removed; a young one may be another peel's and is left alone.
#[test]
fn unfinished_entries_are_finished_or_cleared_once_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&db(dir.path())).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    let age = |path: &Path, seconds: u64| {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(seconds))
            .unwrap();
    };
    let whole = journal.write(&arrival(&fox, 1)).unwrap();
    let whole_tmp = journal.dir().join(".writing-whole");
    std::fs::rename(&whole.path, &whole_tmp).unwrap();
    age(&whole_tmp, 3600);
    let cut = journal.write(&arrival(&fox, 2)).unwrap();
    let bytes = std::fs::read(&cut.path).unwrap();
    std::fs::remove_file(&cut.path).unwrap();
    let cut_tmp = journal.dir().join(".writing-cut");
    std::fs::write(&cut_tmp, &bytes[..bytes.len() / 2]).unwrap();
    age(&cut_tmp, 3600);
    let young = journal.dir().join(".writing-young");
    std::fs::write(&young, &bytes[..10]).unwrap();

    let report = store.recover_arrivals().unwrap();
    assert_eq!(report.recorded.len(), 1, "{:?}", report.lines());
    assert_eq!(report.recorded[0].0.id(), whole.id());
    assert_eq!(turns(&store, "fox"), 1);
    assert!(!whole_tmp.exists() && !cut_tmp.exists());
    assert!(young.exists(), "another peel may be writing it");
    assert!(report.damaged.is_empty());
}

/// A recorded turn's entry goes once the commit that recorded it is on disk, off the turn's path (the log is synced
/// first, in the checkpoint thread): gone when the store closes. One left behind (peel killed before the thread got
/// to it) is found recorded by the next peel, which only removes it.
#[test]
fn a_recorded_entry_goes_once_its_commit_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let mut store = Store::open(&path).unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let journal = store.journal().unwrap();
    let first = arrival(&fox, 1);
    let entry = journal.write(&first).unwrap();
    store.record_arrival(entry.id(), &first).unwrap();
    store.forget_entry(&entry);
    let fox = store.session("fox").unwrap().unwrap();
    let second = arrival(&fox, 2);
    let left = journal.write(&second).unwrap();
    store.record_arrival(left.id(), &second).unwrap();
    drop(store);
    let pending = journal.pending().unwrap().entries;
    assert_eq!(pending, vec![left.clone()], "the forgotten one is gone");

    let mut store = Store::open(&path).unwrap();
    let report = store.recover_arrivals().unwrap();
    assert_eq!(report.recorded.len(), 1, "{:?}", report.lines());
    assert_eq!(report.recorded[0].1.placement, Placement::AlreadyRecorded);
    assert!(journal.pending().unwrap().entries.is_empty());
    assert_eq!(turns(&store, "fox"), 2);
}
