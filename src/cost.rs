//! `/cost`: the tokens and estimated price of each turn of a thread and of the whole thread. The prices come from the
//! model table (`gemini::models`); each turn's estimate was stored with it when it was made.

use crate::render::{self, thousands};
use crate::session::Turn;

/// One row per turn (prompt, thinking and output tokens, estimated dollars), then the totals.
pub fn report(session: &str, turns: &[Turn]) -> String {
    if turns.is_empty() {
        return format!("session {session} has no turns yet: nothing spent");
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
        let mut row = vec![turn.label(), model.to_string()];
        row.extend(counts.iter().map(|c| c.map_or("-".into(), thousands)));
        row.push(format!("${:.3}", meta.cost_usd));
        rows.push(row);
    }
    let mut total = vec!["all".to_string(), String::new()];
    total.extend(totals.iter().map(|&t| thousands(t)));
    total.push(format!("${total_usd:.3}"));
    rows.push(total);
    let mut text = render::table(
        &["turn", "model", "prompt", "thinking", "output", "cost"],
        &rows,
    );
    text.push_str(&format!(
        "{} in session {session}; estimated from list prices (images by size, input tokens where priced)",
        render::count(turns.len(), "turn")
    ));
    text
}
