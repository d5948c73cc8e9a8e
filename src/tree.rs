//! A thread's family as turns: which turns branch off where, which are other takes of the same turn, and the
//! drawing `/tree` prints. Pure functions over stored rows, so they are easy to test.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::render::one_line;
use crate::store::ContentRow;

/// The sessions whose head is each turn's answer, by model content id.
pub type Heads = HashMap<i64, Vec<String>>;

/// One turn in the family: a prompt and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnNode {
    pub user_id: i64,
    pub model_id: i64,
    /// The answer this turn continues from (`None` for a first turn).
    pub parent_model: Option<i64>,
    /// The session that made the turn; each session numbers its own takes.
    pub owner: Option<i64>,
    pub number: i64,
    /// 0 for the first take of this turn its session made, 1 for the second (`b`), ... in the order made.
    pub take: usize,
    pub prompt: String,
    pub images: usize,
}

impl TurnNode {
    /// `3` for a first take, `3b` for a second.
    pub fn label(&self) -> String {
        label(self.number, self.take)
    }
}

pub fn label(number: i64, take: usize) -> String {
    match take {
        0 => number.to_string(),
        n => format!("{number}{}", take_letter(n)),
    }
}

/// `a` for a turn's first take, `b` for its second, ...
fn take_letter(take: usize) -> char {
    (b'a' + take.min(25) as u8) as char
}

/// The turns among `rows` (a family as [`crate::store::Store::family`] returns it, possibly several roots).
pub fn turns(rows: &[ContentRow]) -> Vec<TurnNode> {
    let users: HashMap<i64, &ContentRow> = rows
        .iter()
        .filter(|r| r.role == "user")
        .map(|r| (r.id, r))
        .collect();
    let mut takes: HashMap<(Option<i64>, Option<i64>), usize> = HashMap::new();
    let mut nodes = Vec::new();
    // Rows come parents first, siblings in the order made, so takes are numbered as they were made.
    let mut models: Vec<&ContentRow> = rows.iter().filter(|r| r.role == "model").collect();
    models.sort_by_key(|r| (r.depth, r.parent_id));
    for model in models {
        let Some(user) = model.parent_id.and_then(|id| users.get(&id)) else {
            continue;
        };
        let take = takes.entry((user.parent_id, user.session_id)).or_default();
        nodes.push(TurnNode {
            user_id: user.id,
            model_id: model.id,
            parent_model: user.parent_id,
            owner: user.session_id,
            number: model.turn(),
            take: *take,
            prompt: user.visible_text(),
            images: model.image_count(),
        });
        *take += 1;
    }
    nodes
}

/// Draws the family as a tree: one line a turn, sessions named at their heads, this session's path marked.
pub fn draw(nodes: &[TurnNode], heads: &Heads, path: &HashSet<i64>) -> String {
    let mut children: BTreeMap<Option<i64>, Vec<&TurnNode>> = BTreeMap::new();
    for node in nodes {
        children.entry(node.parent_model).or_default().push(node);
    }
    let mut out = String::new();
    let roots = children.get(&None).cloned().unwrap_or_default();
    for root in &roots {
        draw_node(root, "", "", &children, heads, path, &mut out);
    }
    out
}

fn draw_node(
    node: &TurnNode,
    lead: &str,
    rest: &str,
    children: &BTreeMap<Option<i64>, Vec<&TurnNode>>,
    heads: &Heads,
    path: &HashSet<i64>,
    out: &mut String,
) {
    let marker = if path.contains(&node.model_id) {
        "●"
    } else {
        "○"
    };
    let image = if node.images == 0 {
        "  (text only)"
    } else {
        ""
    };
    out.push_str(&format!(
        "{lead}{marker} {} {}{image}",
        node.label(),
        one_line(&node.prompt, 50)
    ));
    if let Some(names) = heads.get(&node.model_id) {
        out.push_str(&format!("  ← {}", names.join(", ")));
    }
    out.push('\n');
    let kids = children
        .get(&Some(node.model_id))
        .cloned()
        .unwrap_or_default();
    for (i, kid) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let (branch, more) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        draw_node(
            kid,
            &format!("{rest}{branch}"),
            &format!("{rest}{more}"),
            children,
            heads,
            path,
            out,
        );
    }
}

/// For each turn on `path` (model ids, oldest first): the labels of its other takes and the sessions that branch
/// off right after it (their first turn of their own continues from this one).
pub fn path_notes(
    nodes: &[TurnNode],
    path: &[i64],
    heads: &HashMap<i64, Vec<String>>,
) -> HashMap<i64, Vec<String>> {
    let on_path: HashSet<i64> = path.iter().copied().collect();
    let by_model: HashMap<i64, &TurnNode> = nodes.iter().map(|n| (n.model_id, n)).collect();
    let mut notes: HashMap<i64, Vec<String>> = HashMap::new();
    for node in nodes.iter().filter(|n| on_path.contains(&n.model_id)) {
        let others: Vec<String> = nodes
            .iter()
            .filter(|n| {
                n.parent_model == node.parent_model
                    && n.owner == node.owner
                    && n.model_id != node.model_id
            })
            .map(|n| format!("@{}{}", n.number, take_letter(n.take)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TurnMeta;

    fn row(id: i64, parent: Option<i64>, depth: i64, role: &str, text: &str) -> ContentRow {
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
            session_id: Some(1),
        }
    }

    /// 1 fox → 2 night → 3 snow, and 2b dawn (a retry of turn 2).
    fn family() -> Vec<ContentRow> {
        vec![
            row(1, None, 0, "user", "fox"),
            row(2, Some(1), 1, "model", ""),
            row(3, Some(2), 2, "user", "night"),
            row(4, Some(3), 3, "model", ""),
            row(5, Some(2), 2, "user", "dawn"),
            row(6, Some(5), 3, "model", ""),
            row(7, Some(4), 4, "user", "snow"),
            row(8, Some(7), 5, "model", ""),
        ]
    }

    #[test]
    fn takes_are_numbered_in_the_order_made() {
        let nodes = turns(&family());
        let labels: Vec<String> = nodes.iter().map(TurnNode::label).collect();
        assert_eq!(labels, ["1", "2", "2b", "3"]);
        assert_eq!(nodes[2].prompt, "dawn");
    }

    #[test]
    fn the_tree_is_drawn_with_heads_and_path() {
        let nodes = turns(&family());
        let heads = HashMap::from([(8, vec!["fox".to_string()]), (6, vec!["fox~2".to_string()])]);
        let path = HashSet::from([2, 4, 8]);
        let drawing = draw(&nodes, &heads, &path);
        assert_eq!(
            drawing, "● 1 fox\n├─ ● 2 night\n│  └─ ● 3 snow  ← fox\n└─ ○ 2b dawn  ← fox~2\n",
            "{drawing}"
        );
    }

    #[test]
    fn the_path_notes_other_takes_and_branches() {
        let nodes = turns(&family());
        let heads = HashMap::from([(8, vec!["fox".to_string()]), (6, vec!["fox~2".to_string()])]);
        let notes = path_notes(&nodes, &[2, 4, 8], &heads);
        assert_eq!(notes[&4], ["other takes: @2b"]);
        assert_eq!(notes[&2], ["fox~2 branches off here"]);
        assert!(!notes.contains_key(&8));
    }
}
