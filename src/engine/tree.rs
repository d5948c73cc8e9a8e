//! A thread's family as turns: which turns branch off where, which are takes of the same turn, and how each is
//! labelled. Pure functions over stored rows, so they are easy to test.
//!
//! One labelling scheme everywhere (tree, history, messages, file names): a turn that has one take is `3`; once a
//! turn has several takes (a /retry, a new prompt after /undo, another session's turn after the same answer,
//! variants), they are `3a`, `3b`, ... in the order they were made, whichever session made them.

use std::collections::{HashMap, HashSet};

use crate::store::ContentRow;
pub use crate::store::Take;

/// The sessions whose head is each turn's answer, by model content id.
pub type Heads = HashMap<i64, Vec<String>>;

impl Take {
    /// Labels turn `number`'s take: `3` when it is the turn's only take, else `3a`, `3b`, ...
    pub fn label(self, number: i64) -> String {
        if self.of <= 1 {
            number.to_string()
        } else {
            format!("{number}{}", take_letter(self.index))
        }
    }
}

/// `a` for a turn's first take, `b` for its second, ... (`z` for the 26th and later).
pub fn take_letter(take: usize) -> char {
    (b'a' + take.min(25) as u8) as char
}

/// One turn in the family: a prompt and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnNode {
    pub user_id: i64,
    pub model_id: i64,
    /// The answer this turn continues from (`None` for a first turn).
    pub parent_model: Option<i64>,
    /// The session that made the turn.
    pub owner: Option<i64>,
    pub number: i64,
    pub take: Take,
    pub prompt: String,
    pub images: usize,
}

impl TurnNode {
    pub fn label(&self) -> String {
        self.take.label(self.number)
    }
}

/// The turns among `rows` (a family as [`crate::store::Store::family`] returns it, possibly several roots).
/// Takes are the turns that continue from the same answer; first turns are takes of each other when the same
/// session made them (a retried first turn).
pub fn turns(rows: &[ContentRow]) -> Vec<TurnNode> {
    let users: HashMap<i64, &ContentRow> = rows
        .iter()
        .filter(|r| r.role == "user")
        .map(|r| (r.id, r))
        .collect();
    // Rows come parents first, siblings in the order made, so takes are numbered as they were made.
    let mut models: Vec<&ContentRow> = rows.iter().filter(|r| r.role == "model").collect();
    models.sort_by_key(|r| (r.depth, r.parent_id));
    let mut nodes = Vec::new();
    let mut made: HashMap<(Option<i64>, Option<i64>), usize> = HashMap::new();
    for model in models {
        let Some(user) = model.parent_id.and_then(|id| users.get(&id)) else {
            continue;
        };
        let index = made.entry(sibling_key(user)).or_default();
        nodes.push(TurnNode {
            user_id: user.id,
            model_id: model.id,
            parent_model: user.parent_id,
            owner: user.session_id,
            number: model.turn(),
            take: Take {
                index: *index,
                of: 0,
            },
            prompt: user.visible_text(),
            images: model.image_count(),
        });
        *index += 1;
    }
    for node in &mut nodes {
        node.take.of = made[&(
            node.parent_model,
            node.parent_model.is_none().then_some(node.owner).flatten(),
        )];
    }
    nodes
}

/// What makes prompts takes of the same turn: the answer they continue from, or for first turns the session.
fn sibling_key(user: &ContentRow) -> (Option<i64>, Option<i64>) {
    match user.parent_id {
        Some(parent) => (Some(parent), None),
        None => (None, user.session_id),
    }
}

/// For each turn on `path` (model ids, oldest first): its other takes and the sessions that branch off right
/// after it (their first turn of their own continues from this one).
pub fn path_notes(nodes: &[TurnNode], path: &[i64], heads: &Heads) -> HashMap<i64, Vec<String>> {
    let on_path: HashSet<i64> = path.iter().copied().collect();
    let by_model: HashMap<i64, &TurnNode> = nodes.iter().map(|n| (n.model_id, n)).collect();
    let mut notes: HashMap<i64, Vec<String>> = HashMap::new();
    for node in nodes.iter().filter(|n| on_path.contains(&n.model_id)) {
        let others: Vec<String> = nodes
            .iter()
            .filter(|n| n.model_id != node.model_id && same_turn(n, node))
            .map(|n| format!("@{}", n.label()))
            .collect();
        if !others.is_empty() {
            notes
                .entry(node.model_id)
                .or_default()
                .push(format!("other takes: {}", others.join(" ")));
        }
    }
    // Where each other session leaves this path: walk up from its head to the first turn on the path.
    for (head, names) in heads {
        if on_path.contains(head) && path.last() == Some(head) {
            continue;
        }
        let mut at = Some(*head);
        while let Some(id) = at.filter(|id| !on_path.contains(id)) {
            at = by_model.get(&id).and_then(|n| n.parent_model);
        }
        if let Some(id) = at {
            let verb = if id == *head {
                "ends here"
            } else {
                "branches off here"
            };
            notes
                .entry(id)
                .or_default()
                .push(format!("{} {verb}", names.join(", ")));
        }
    }
    notes
}

/// Two nodes are takes of the same turn.
pub fn same_turn(a: &TurnNode, b: &TurnNode) -> bool {
    a.parent_model == b.parent_model && (a.parent_model.is_some() || a.owner == b.owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TurnMeta;

    fn row(
        id: i64,
        parent: Option<i64>,
        depth: i64,
        role: &str,
        text: &str,
        session: i64,
    ) -> ContentRow {
        ContentRow {
            id,
            parent_id: parent,
            depth,
            role: role.into(),
            parts_json: format!(
                r#"[{{"text":"{text}"}},{{"inlineData":{{"mimeType":"image/png","data":"AA=="}}}}]"#
            ),
            extra: Default::default(),
            meta: TurnMeta::default(),
            created_at: 0,
            session_id: Some(session),
        }
    }

    /// 1 fox → 2 night → 3 snow; 2b dawn (a retry of turn 2); and session 2's own turn 2 after turn 1.
    fn family() -> Vec<ContentRow> {
        vec![
            row(1, None, 0, "user", "fox", 1),
            row(2, Some(1), 1, "model", "", 1),
            row(3, Some(2), 2, "user", "night", 1),
            row(4, Some(3), 3, "model", "", 1),
            row(5, Some(2), 2, "user", "dawn", 1),
            row(6, Some(5), 3, "model", "", 1),
            row(7, Some(4), 4, "user", "snow", 1),
            row(8, Some(7), 5, "model", "", 1),
            row(9, Some(2), 2, "user", "dusk", 2),
            row(10, Some(9), 3, "model", "", 2),
        ]
    }

    #[test]
    fn takes_are_lettered_across_sessions_in_the_order_made() {
        let nodes = turns(&family());
        let labels: Vec<String> = nodes.iter().map(TurnNode::label).collect();
        assert_eq!(labels, ["1", "2a", "2b", "2c", "3"]);
        assert_eq!(nodes[2].prompt, "dawn");
        assert_eq!(nodes[3].take, Take { index: 2, of: 3 });
    }

    #[test]
    fn first_turns_are_takes_only_within_their_session() {
        let rows = vec![
            row(1, None, 0, "user", "fox", 1),
            row(2, Some(1), 1, "model", "", 1),
            row(3, None, 0, "user", "fox again", 1),
            row(4, Some(3), 1, "model", "", 1),
            row(5, None, 0, "user", "fresh start", 2),
            row(6, Some(5), 1, "model", "", 2),
        ];
        let labels: Vec<String> = turns(&rows).iter().map(TurnNode::label).collect();
        assert_eq!(labels, ["1a", "1b", "1"]);
    }

    #[test]
    fn the_path_notes_other_takes_and_branches() {
        let nodes = turns(&family());
        let heads = HashMap::from([(8, vec!["fox".to_string()]), (6, vec!["fox~2".to_string()])]);
        let notes = path_notes(&nodes, &[2, 4, 8], &heads);
        assert_eq!(notes[&4], ["other takes: @2b @2c"]);
        assert_eq!(notes[&2], ["fox~2 branches off here"]);
        assert!(!notes.contains_key(&8));
    }
}
