//! What the faces print, as text: tables, the footer, `/history`, `/tree`, `/sessions`, `/cost`, `/settings`.
//! Everything from outside is sanitised here, as it is put into a line.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::HistoryRow;
use crate::engine::session::Turn;
use crate::engine::tree::{Heads, TurnNode};
use crate::settings::{Settings, Transport};
use crate::store::{SessionSummary, TurnMeta};
use unicode_width::UnicodeWidthStr;

use crate::text::{self, one_line, sanitize, thousands};

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A path as the person can use it from where they stand: relative to the current folder when it is inside it,
/// else absolute.
pub fn path(path: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf());
    sanitize(&shown.display().to_string())
}

/// Text fitted to `width` columns: a longer line breaks between words, its continuation indented under where its
/// last column starts (the text after a run of two spaces, as in `/help` and tables), or under its own indent.
pub fn wrap(text: &str, width: usize) -> String {
    text.lines()
        .map(|line| wrap_line(line, width.max(20)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn wrap_line(line: &str, width: usize) -> String {
    if line.visible() <= width {
        return line.to_string();
    }
    let indent = line.len() - line.trim_start().len();
    let hang = line
        .trim_end()
        .rfind("  ")
        .map(|i| i + 2 + line[i + 2..].len() - line[i + 2..].trim_start().len())
        .filter(|&h| line[..h].visible() <= width / 2)
        .unwrap_or(indent);
    let pad = " ".repeat(line[..hang].visible());
    let mut out = line[..hang].to_string();
    let mut used = out.visible();
    let mut fresh = true;
    // Words keep the spaces before them (a table's columns stay aligned) unless they start a new line.
    let mut rest = &line[hang..];
    while !rest.is_empty() {
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        let after = &rest[spaces..];
        let end = after.find(' ').unwrap_or(after.len());
        let (gap, word) = (&rest[..spaces], &after[..end]);
        rest = &after[end..];
        if word.is_empty() {
            break;
        }
        if !fresh && used + gap.visible() + word.visible() > width {
            out.push('\n');
            out.push_str(&pad);
            used = pad.visible();
            fresh = true;
        }
        if !fresh {
            out.push_str(gap);
            used += gap.visible();
        }
        out.push_str(word);
        used += word.visible();
        fresh = false;
    }
    out
}

/// Columns on screen, ANSI styles (which take none) left out.
trait Visible {
    fn visible(&self) -> usize;
}

impl Visible for str {
    fn visible(&self) -> usize {
        let mut width = 0;
        let mut rest = self;
        while let Some(at) = rest.find('\x1b') {
            width += rest[..at].width();
            let after = &rest[at + 1..];
            let end = after
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(after.len(), |i| i + 1);
            rest = &after[end..];
        }
        width + rest.width()
    }
}

impl Visible for String {
    fn visible(&self) -> usize {
        self.as_str().visible()
    }
}

/// `parts` joined with `sep`, broken into lines of at most `width` columns between parts.
pub fn join_fitting(parts: &[String], sep: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for (i, part) in parts.iter().enumerate() {
        let w = part.width();
        if i > 0 {
            if used + sep.width() + w > width {
                out.push_str(sep.trim_end());
                out.push('\n');
                used = 0;
            } else {
                out.push_str(sep);
                used += sep.width();
            }
        }
        out.push_str(part);
        used += w;
    }
    out
}

/// "gemini-3-pro-image · 16:9 · 1K · 12.3 s · sent 1.2 MB · 1,950 tokens (in 600, thinking 230, out 1,120) · ~$0.135".
pub fn footer(meta: &TurnMeta) -> String {
    footer_parts(meta).join(" · ")
}

/// The footer's parts, for fitting it to the terminal.
pub fn footer_parts(meta: &TurnMeta) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(settings) = &meta.settings {
        parts.push(settings.model.clone());
        parts.push(settings.shape());
    }
    parts.push(format!("{:.1} s", meta.elapsed_ms as f64 / 1000.0));
    if meta.request_bytes > 0 {
        parts.push(format!("sent {}", text::bytes(meta.request_bytes)));
    }
    if let Some(usage) = &meta.usage {
        let mut tokens = usage
            .total_token_count
            .map_or("? tokens".into(), |t| format!("{} tokens", thousands(t)));
        let detail: Vec<String> = [
            ("in", usage.prompt_token_count),
            ("thinking", usage.thoughts_token_count),
            ("out", usage.candidates_token_count),
        ]
        .iter()
        .filter_map(|(label, n)| n.map(|n| format!("{label} {}", thousands(n))))
        .collect();
        if !detail.is_empty() {
            tokens.push_str(&format!(" ({})", detail.join(", ")));
        }
        parts.push(tokens);
    }
    parts.push(format!("~${:.3}", meta.cost_usd));
    parts
}

/// What `/transport` changed.
pub fn transport(transport: Transport, offline: bool) -> String {
    let what = match transport {
        Transport::Generate => {
            "transport generate: each turn sends the whole thread (generateContent)"
        }
        Transport::Interactions => {
            "transport interactions: the server keeps the thread and each turn sends only what is new; a turn made \
             another way, or one the server has lost, sends the thread whole once"
        }
    };
    if offline {
        format!("{what} (offline answers come from the local stand-in either way)")
    } else {
        what.to_string()
    }
}

/// "next turn: gemini-3-pro-image · 16:9 · 1K · thoughts".
pub fn next_turn(settings: &Settings) -> String {
    format!(
        "next turn: {} · {}{}",
        settings.model,
        settings.shape(),
        settings.switches()
    )
}

/// `/history`: a row a turn; a turn's notes (other takes, branches) on a line of their own under it.
pub fn history(session: &str, rows: &[HistoryRow]) -> String {
    if rows.is_empty() {
        return format!("session {} has no turns yet", sanitize(session));
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let image = match &row.image {
                Some((meta, file)) if file.present => {
                    format!("{} {}x{}", path(&file.path), meta.width, meta.height)
                }
                Some((meta, _)) => format!(
                    "({}x{}; /show {} writes it)",
                    meta.width, meta.height, row.label
                ),
                None => "(text only)".into(),
            };
            let attached = match row.attached {
                0 => String::new(),
                n => format!(" [+{}]", text::count(n, "image")),
            };
            vec![
                row.label.clone(),
                format!("{}{attached}", one_line(&row.prompt, 40)),
                image,
                row.tokens.map_or("-".into(), thousands),
                format!("${:.3}", row.cost_usd),
            ]
        })
        .collect();
    let table = table(&["turn", "prompt", "image", "tokens", "cost"], &cells);
    let indent = " ".repeat(
        rows.iter()
            .map(|r| r.label.chars().count())
            .max()
            .unwrap_or(0)
            .max(4)
            + 2,
    );
    let mut lines = table.lines();
    let mut out = String::new();
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (row, line) in rows.iter().zip(lines) {
        out.push_str(line);
        out.push('\n');
        if !row.notes.is_empty() {
            out.push_str(&format!("{indent}{}\n", sanitize(&row.notes.join("; "))));
        }
    }
    let total: f64 = rows.iter().map(|r| r.cost_usd).sum();
    out.push_str(&format!(
        "{}, ${total:.3} estimated; /branch NAME @TURN continues from any take, /tree shows them all",
        text::count(rows.len(), "turn")
    ));
    out
}

/// `/tree`: one line a turn, sessions named at their heads, this session's path marked.
pub fn tree(nodes: &[TurnNode], heads: &Heads, path: &HashSet<i64>) -> String {
    let mut children: BTreeMap<Option<i64>, Vec<&TurnNode>> = BTreeMap::new();
    for node in nodes {
        children.entry(node.parent_model).or_default().push(node);
    }
    let mut out = String::new();
    let roots = children.get(&None).cloned().unwrap_or_default();
    for root in &roots {
        tree_node(root, "", "", &children, heads, path, &mut out);
    }
    out
}

fn tree_node(
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
        tree_node(
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

/// `/sessions`, `peel sessions`: the current one marked.
pub fn sessions(sessions: &[SessionSummary], current: Option<i64>) -> String {
    if sessions.is_empty() {
        return "no sessions yet".to_string();
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let marker = if Some(s.session.id) == current {
                "*"
            } else {
                " "
            };
            vec![
                format!("{marker}{}", sanitize(&s.session.name)),
                s.turns.to_string(),
                text::timestamp(s.session.updated_at),
                sanitize(&s.session.settings.model),
                match (&s.session.origin_session, s.origin_turn) {
                    (Some(from), Some(turn)) => format!("{}@{turn}", sanitize(from)),
                    (Some(from), None) => sanitize(from),
                    (None, _) => String::new(),
                },
                s.last_prompt
                    .as_deref()
                    .map_or(String::new(), |p| one_line(p, 40)),
            ]
        })
        .collect();
    table(
        &[" name", "turns", "updated", "model", "from", "last prompt"],
        &rows,
    )
    .trim_end()
    .to_string()
}

/// `/cost`: one row per turn (prompt, thinking and output tokens, estimated dollars), then the totals.
pub fn cost(session: &str, turns: &[Turn]) -> String {
    if turns.is_empty() {
        return format!(
            "session {} has no turns yet: nothing spent",
            sanitize(session)
        );
    }
    let mut totals = [0u64; 3];
    let mut total_usd = 0.0;
    let mut rows = Vec::with_capacity(turns.len() + 1);
    for turn in turns {
        let meta = &turn.model.meta;
        let usage = meta.usage.as_ref();
        let counts = [
            usage.and_then(|u| u.prompt_token_count),
            usage.and_then(|u| u.thoughts_token_count),
            usage.and_then(|u| u.candidates_token_count),
        ];
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count.unwrap_or(0);
        }
        total_usd += meta.cost_usd;
        let model = meta.settings.as_ref().map_or("?", |s| s.model.as_str());
        let mut row = vec![turn.label(), sanitize(model)];
        row.extend(counts.iter().map(|c| c.map_or("-".into(), thousands)));
        row.push(format!("${:.3}", meta.cost_usd));
        rows.push(row);
    }
    let mut total = vec!["all".to_string(), String::new()];
    total.extend(totals.iter().map(|&t| thousands(t)));
    total.push(format!("${total_usd:.3}"));
    rows.push(total);
    let mut out = table(
        &["turn", "model", "prompt", "thinking", "output", "cost"],
        &rows,
    );
    out.push_str(&format!(
        "{} in session {}; estimated from list prices (images by size, input tokens where priced)",
        text::count(turns.len(), "turn"),
        sanitize(session)
    ));
    out
}

/// `/settings`.
pub struct SettingsView<'a> {
    pub session: &'a str,
    pub settings: &'a Settings,
    pub attachments: usize,
    pub stream: bool,
    pub previews: String,
    pub images_to: PathBuf,
}

pub fn settings(view: &SettingsView<'_>) -> String {
    let s = view.settings;
    let on_off = |on: bool| if on { "on" } else { "off" };
    let rows = [
        ("session", sanitize(view.session)),
        ("model", sanitize(&s.model)),
        (
            "aspect",
            s.aspect
                .clone()
                .unwrap_or("auto (the model decides)".into()),
        ),
        ("size", s.size.clone().unwrap_or("1K (default)".into())),
        ("thoughts", on_off(s.thoughts).into()),
        (
            "think",
            s.think
                .clone()
                .unwrap_or("auto (the model's default)".into()),
        ),
        ("search", on_off(s.search).into()),
        ("stream", on_off(view.stream).into()),
        ("transport", s.transport.name().into()),
        ("context", s.context.describe()),
        ("previews", view.previews.clone()),
        ("attachments", view.attachments.to_string()),
        ("images to", path(&view.images_to)),
    ];
    rows.iter()
        .map(|(k, v)| format!("{k:<12} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::types::UsageMetadata;

    #[test]
    fn footer_reads_well() {
        let meta = TurnMeta {
            settings: Some(Settings {
                aspect: Some("16:9".into()),
                ..Settings::default()
            }),
            usage: Some(UsageMetadata {
                prompt_token_count: Some(600),
                candidates_token_count: Some(1120),
                thoughts_token_count: Some(230),
                total_token_count: Some(1950),
                extra: Default::default(),
            }),
            elapsed_ms: 12_345,
            cost_usd: 0.1352,
            ..TurnMeta::default()
        };
        assert_eq!(
            footer(&meta),
            "gemini-3-pro-image · 16:9 · 1K · 12.3 s · 1,950 tokens (in 600, thinking 230, out 1,120) · ~$0.135"
        );
    }

    #[test]
    fn long_lines_wrap_under_their_last_column() {
        let help =
            "  /thoughts on|off   ask for the model's thought summaries and show them, dimmed";
        assert_eq!(
            wrap(help, 50),
            "  /thoughts on|off   ask for the model's thought\n                     summaries and show them,\n                     dimmed"
        );
        assert_eq!(wrap("short", 50), "short");
        assert_eq!(
            wrap("\x1b[2mdim words fit\x1b[0m", 13),
            "\x1b[2mdim words fit\x1b[0m"
        );
        let parts: Vec<String> = [
            "gemini-3-pro-image",
            "auto · 1K",
            "2.1 s",
            "1,317 tokens (in 5)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            join_fitting(&parts, " · ", 40),
            "gemini-3-pro-image · auto · 1K · 2.1 s ·\n1,317 tokens (in 5)"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
    }

    #[test]
    fn paths_are_shown_from_where_the_person_stands() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(path(&cwd.join("out/fox/1.jpg")), "out/fox/1.jpg");
        assert_eq!(path(Path::new("/elsewhere/1.jpg")), "/elsewhere/1.jpg");
    }

    #[test]
    fn the_tree_is_drawn_with_heads_and_path() {
        use crate::engine::tree::Take;
        let node = |user, model, parent, number, index, of, prompt: &str| TurnNode {
            user_id: user,
            model_id: model,
            parent_model: parent,
            owner: Some(1),
            number,
            take: Take { index, of },
            prompt: prompt.into(),
            images: 1,
        };
        let nodes = vec![
            node(1, 2, None, 1, 0, 1, "fox"),
            node(3, 4, Some(2), 2, 0, 2, "night"),
            node(5, 6, Some(2), 2, 1, 2, "dawn"),
            node(7, 8, Some(4), 3, 0, 1, "snow"),
        ];
        let heads = Heads::from([(8, vec!["fox".to_string()]), (6, vec!["fox~2".to_string()])]);
        let path = HashSet::from([2, 4, 8]);
        assert_eq!(
            tree(&nodes, &heads, &path),
            "● 1 fox\n├─ ● 2a night\n│  └─ ● 3 snow  ← fox\n└─ ○ 2b dawn  ← fox~2\n"
        );
    }
}
