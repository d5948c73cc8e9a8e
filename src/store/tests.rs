//! The store's own tests, including a property test of the tree against a simple in-memory model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::*;
use crate::gemini::types::{Content, Part};

/// A model answer whose image and signature are made from `seed` (equal seeds share blobs).
fn model_answer(seed: u8) -> Content {
    let mut image = Part::image("image/jpeg", STANDARD.encode(vec![seed; 4096]));
    image.thought_signature = Some(STANDARD.encode(vec![seed ^ 0xff; 4096]));
    let thought = Part {
        text: Some("thinking".into()),
        thought: Some(true),
        ..Part::default()
    };
    Content {
        role: Some("model".into()),
        parts: vec![thought, image],
        extra: Default::default(),
    }
}

fn append(
    store: &mut Store,
    session: i64,
    head: Option<i64>,
    parent: Option<i64>,
    seed: u8,
) -> Appended {
    let user = Content::user(vec![Part::text(format!("prompt {seed}"))]);
    let meta = TurnMeta::default();
    let turn = NewTurn {
        user: &user,
        model: &model_answer(seed),
        meta: &meta,
    };
    store.append_turn(session, head, parent, turn).unwrap()
}

#[test]
fn turns_chain_and_round_trip() {
    let mut store = Store::open_in_memory().unwrap();
    let s = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let a = append(&mut store, s.id, None, None, 1);
    let b = append(&mut store, s.id, Some(a.model_id), Some(a.model_id), 2);
    assert_eq!((a.turn, b.turn), (1, 2));
    let chain = store.chain(Some(b.model_id)).unwrap();
    assert_eq!(chain.len(), 4);
    assert_eq!(store.parts(&chain[3]).unwrap(), model_answer(2).parts);
    assert_eq!(
        store.parts(&chain[2]).unwrap()[0].text.as_deref(),
        Some("prompt 2")
    );
    let summary = &store.list_sessions().unwrap()[0];
    assert_eq!(
        (summary.turns, summary.last_prompt.as_deref()),
        (2, Some("prompt 2"))
    );
}

#[test]
fn blobs_are_stored_once() {
    let mut store = Store::open_in_memory().unwrap();
    let s = store
        .create_session("a", NewSession::empty(&Settings::default()))
        .unwrap();
    let first = append(&mut store, s.id, None, None, 9);
    append(
        &mut store,
        s.id,
        Some(first.model_id),
        Some(first.model_id),
        9,
    );
    assert_eq!(store.blob_bytes().unwrap(), 2 * 4096);
}

#[test]
fn a_moved_head_sends_the_turn_to_a_new_branch() {
    let mut store = Store::open_in_memory().unwrap();
    let s = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    let first = append(&mut store, s.id, None, None, 1);
    append(
        &mut store,
        s.id,
        Some(first.model_id),
        Some(first.model_id),
        2,
    ); // "the other process"
    let late = append(
        &mut store,
        s.id,
        Some(first.model_id),
        Some(first.model_id),
        3,
    );
    let branch = late.branched_to.expect("a branch");
    assert_eq!(branch.name, "fox~2");
    assert_eq!(branch.origin_session.as_deref(), Some("fox"));
    assert_eq!(branch.head_id, Some(late.model_id));
    assert_ne!(
        store.session("fox").unwrap().unwrap().head_id,
        Some(late.model_id)
    );
}

#[test]
fn branch_names_count_on_from_the_base() {
    let store = Store::open_in_memory().unwrap();
    let fox = store
        .create_session("fox", NewSession::empty(&Settings::default()))
        .unwrap();
    assert_eq!(store.free_branch_name("fox").unwrap(), "fox~2");
    store
        .branch_session(&fox, "fox~2", None, &fox.settings)
        .unwrap();
    assert_eq!(store.free_branch_name("fox~2").unwrap(), "fox~3");
    assert_eq!(store.free_branch_name("a~b").unwrap(), "a~b~2");
}

#[test]
fn new_databases_have_large_pages_and_blobs_read_back_in_chunks() {
    use crate::gemini::body::BlobSource;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("p.db")).unwrap();
    let page_size: i64 = store
        .conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, PAGE_SIZE);
    let s = store
        .create_session("a", NewSession::empty(&Settings::default()))
        .unwrap();
    // An answer whose image spans several pages and does not end on a chunk boundary.
    let image: Vec<u8> = (0..200_003u32).map(|i| (i * 31 % 253) as u8).collect();
    let mut part = Part::image("image/png", STANDARD.encode(&image));
    part.thought_signature = Some(STANDARD.encode(b"x".repeat(5000)));
    let model = Content {
        role: Some("model".into()),
        parts: vec![part],
        extra: Default::default(),
    };
    let user = Content::user(vec![Part::text("p")]);
    let meta = TurnMeta::default();
    let turn = NewTurn {
        user: &user,
        model: &model,
        meta: &meta,
    };
    store.append_turn(s.id, None, None, turn).unwrap();
    let hash = hash_hex(&image);
    let reader = store.blob_reader().unwrap();
    let mut chunks = Vec::new();
    reader
        .read_chunks(&hash, 48 * 1024, &mut |chunk| {
            chunks.push(chunk.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(chunks.len(), 5);
    assert!(chunks[..4].iter().all(|c| c.len() == 48 * 1024));
    assert_eq!(chunks.concat(), image);
    assert_eq!(reader.read(&hash).unwrap(), image);
    assert!(reader.read_chunks("0000", 10, &mut |_| Ok(())).is_err());
}

#[test]
fn a_file_that_is_not_a_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peel.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = format!("{:#}", Store::open(&path).err().unwrap());
    assert!(err.contains("not a SQLite database"), "{err}");
}

#[test]
fn create_and_delete_cycles_do_not_grow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peel.db");
    let mut store = Store::open(&path).unwrap();
    let mut sizes = Vec::new();
    for cycle in 0..6u8 {
        let s = store
            .create_session("tmp", NewSession::empty(&Settings::default()))
            .unwrap();
        let mut head = None;
        for turn in 0..5u8 {
            // Big, distinct blobs each cycle: 5 turns × 2 × 64 KiB.
            let seed = cycle.wrapping_mul(16).wrapping_add(turn);
            let user = Content::user(vec![Part::text("p")]);
            let mut model = model_answer(seed);
            model.parts[1].inline_data.as_mut().unwrap().data = STANDARD.encode(vec![seed; 65536]);
            let meta = TurnMeta::default();
            let turn = NewTurn {
                user: &user,
                model: &model,
                meta: &meta,
            };
            head = Some(store.append_turn(s.id, head, head, turn).unwrap().model_id);
        }
        store.delete_session(s.id).unwrap();
        let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the log is copied back and emptied after a delete");
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    assert_eq!(store.blob_bytes().unwrap(), 0);
    assert!(
        sizes.iter().all(|&s| s <= sizes[0]),
        "the file grew across cycles: {sizes:?}"
    );
}

// ---- the tree against a model ----

#[derive(Debug, Clone)]
enum Op {
    Turn { session: usize, seed: u8 },
    Branch { session: usize, back: usize },
    Undo { session: usize },
    Redo { session: usize },
    Retry { session: usize, seed: u8 },
    Delete { session: usize },
}

fn op() -> impl Strategy<Value = Op> {
    // Few distinct seeds, so blobs are shared between turns and branches.
    let seed = 0u8..6;
    let session = 0usize..4;
    prop_oneof![
        4 => (session.clone(), seed.clone()).prop_map(|(session, seed)| Op::Turn { session, seed }),
        2 => (session.clone(), 0usize..3).prop_map(|(session, back)| Op::Branch { session, back }),
        2 => session.clone().prop_map(|session| Op::Undo { session }),
        1 => session.clone().prop_map(|session| Op::Redo { session }),
        2 => (session.clone(), seed).prop_map(|(session, seed)| Op::Retry { session, seed }),
        1 => session.prop_map(|session| Op::Delete { session }),
    ]
}

/// A session in the model: (head, redo stack, origin head).
type ModelSession = (Option<i64>, Vec<i64>, Option<i64>);

/// The simplest possible model of the tree: nodes are model contents (a user content always sits right above one).
#[derive(Debug, Default)]
struct Model {
    /// model content id → (parent model content id, owner session id, seed)
    nodes: BTreeMap<i64, (Option<i64>, Option<i64>, u8)>,
    sessions: BTreeMap<i64, ModelSession>,
}

impl Model {
    fn chain(&self, mut head: Option<i64>) -> Vec<i64> {
        let mut chain = Vec::new();
        while let Some(id) = head {
            chain.push(id);
            head = self.nodes[&id].0;
        }
        chain.reverse();
        chain
    }

    /// What must survive a delete: everything a session reaches, and everything above that.
    fn collect_garbage(&mut self) {
        let mut keep: BTreeSet<i64> = BTreeSet::new();
        let mut roots: Vec<i64> = Vec::new();
        for (head, redo, origin) in self.sessions.values() {
            roots.extend(head.iter().chain(redo).chain(origin.iter()));
        }
        roots.extend(
            self.nodes
                .iter()
                .filter(|(_, n)| n.1.is_some())
                .map(|(id, _)| *id),
        );
        for root in roots {
            keep.extend(self.chain(Some(root)));
        }
        self.nodes.retain(|id, _| keep.contains(id));
    }

    fn blob_seeds(&self) -> BTreeSet<u8> {
        self.nodes.values().map(|n| n.2).collect()
    }
}

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    for (id, (head, redo, _)) in &model.sessions {
        let row = store.session_by_id(*id).unwrap();
        prop_assert_eq!(row.head_id, *head);
        prop_assert_eq!(&row.redo, redo);
        let stored: Vec<i64> = store
            .chain(*head)
            .unwrap()
            .into_iter()
            .filter(|r| r.role == "model")
            .map(|r| r.id)
            .collect();
        prop_assert_eq!(stored, model.chain(*head));
    }
    let sessions: i64 = store
        .conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    prop_assert_eq!(sessions as usize, model.sessions.len());
    let models: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM contents WHERE role = 'model'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    prop_assert_eq!(models as usize, model.nodes.len());
    let mut hashes: Vec<String> = store
        .conn
        .prepare("SELECT hash FROM blobs ORDER BY hash")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    hashes.sort();
    let mut expected: Vec<String> = model
        .blob_seeds()
        .into_iter()
        .flat_map(|seed| {
            [
                hash_hex(&vec![seed; 4096]),
                hash_hex(&vec![seed ^ 0xff; 4096]),
            ]
        })
        .collect();
    expected.sort();
    prop_assert_eq!(
        hashes,
        expected,
        "the blob table holds exactly the blobs still reached"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_tree_matches_a_simple_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut store = Store::open_in_memory().unwrap();
        let mut model = Model::default();
        let mut names: HashMap<i64, String> = HashMap::new();
        let first = store.create_session("s", NewSession::empty(&Settings::default())).unwrap();
        model.sessions.insert(first.id, (None, Vec::new(), None));
        names.insert(first.id, first.name);
        for op in ops {
            let ids: Vec<i64> = model.sessions.keys().copied().collect();
            if ids.is_empty() {
                break;
            }
            let pick = |i: usize| ids[i % ids.len()];
            match op {
                Op::Turn { session, seed } => {
                    let id = pick(session);
                    let head = model.sessions[&id].0;
                    let appended = append(&mut store, id, head, head, seed);
                    model.nodes.insert(appended.model_id, (head, Some(id), seed));
                    let s = model.sessions.get_mut(&id).unwrap();
                    (s.0, s.1) = (Some(appended.model_id), Vec::new());
                }
                Op::Branch { session, back } => {
                    let id = pick(session);
                    let chain = model.chain(model.sessions[&id].0);
                    let head = chain.len().checked_sub(back + 1).map(|i| chain[i]);
                    let from = store.session_by_id(id).unwrap();
                    let name = store.free_branch_name(&from.name).unwrap();
                    let branch = store
                        .branch_session(&from, &name, head, &from.settings)
                        .unwrap();
                    model.sessions.insert(branch.id, (head, Vec::new(), head));
                    names.insert(branch.id, name);
                }
                Op::Undo { session } => {
                    let id = pick(session);
                    let (head, mut redo, origin) = model.sessions[&id].clone();
                    if let Some(current) = head {
                        let parent = model.nodes[&current].0;
                        redo.push(current);
                        prop_assert!(store.move_head(id, head, parent, &redo).unwrap());
                        model.sessions.insert(id, (parent, redo, origin));
                    }
                }
                Op::Redo { session } => {
                    let id = pick(session);
                    let (head, mut redo, origin) = model.sessions[&id].clone();
                    if let Some(next) = redo.pop() {
                        prop_assert!(store.move_head(id, head, Some(next), &redo).unwrap());
                        model.sessions.insert(id, (Some(next), redo, origin));
                    }
                }
                Op::Retry { session, seed } => {
                    let id = pick(session);
                    let head = model.sessions[&id].0;
                    if let Some(current) = head {
                        let parent = model.nodes[&current].0;
                        let appended = append(&mut store, id, head, parent, seed);
                        model.nodes.insert(appended.model_id, (parent, Some(id), seed));
                        let s = model.sessions.get_mut(&id).unwrap();
                        (s.0, s.1) = (Some(appended.model_id), Vec::new());
                    }
                }
                Op::Delete { session } => {
                    let id = pick(session);
                    store.delete_session(id).unwrap();
                    model.sessions.remove(&id);
                    for node in model.nodes.values_mut() {
                        if node.1 == Some(id) {
                            node.1 = None;
                        }
                    }
                    model.collect_garbage();
                }
            }
            check(&store, &model)?;
        }
    }
}
