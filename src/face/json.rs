//! `--json`: one object per turn on stdout, refused turns too, so a script can read what happened and why.

use serde_json::{Value, json};

use crate::engine::{Refused, TurnReport};
use crate::store::{ImageMeta, SessionSummary};
use crate::text::sanitize;

/// An image file written for a turn.
pub fn image(path: &std::path::Path, meta: &ImageMeta) -> Value {
    json!({
        "path": path,
        "mime": meta.mime,
        "width": meta.width,
        "height": meta.height,
        "bytes": meta.bytes,
    })
}

/// A recorded turn.
pub fn turn(report: &TurnReport) -> Value {
    let meta = &report.meta;
    json!({
        "session": report.session,
        "turn": report.turn,
        "label": report.label,
        "images": report.images.iter().map(|i| image(&i.path, &i.meta)).collect::<Vec<_>>(),
        "text": sanitize(&report.text),
        "finish_reason": meta.finish_reason,
        "message": Value::Null,
        "sources": meta.sources,
        "usage": meta.usage,
        "cost": { "usd": meta.cost_usd, "estimated": true },
        "elapsed_ms": meta.elapsed_ms,
    })
}

/// A turn the model refused: nothing was recorded.
pub fn refused(session: &str, refused: &Refused) -> Value {
    json!({
        "session": session,
        "turn": Value::Null,
        "label": Value::Null,
        "images": [],
        "text": "",
        "finish_reason": refused.reason,
        "message": sanitize(&refused.explanation),
        "sources": [],
        "usage": refused.usage,
        "cost": { "usd": 0.0, "estimated": true },
    })
}

/// `peel sessions --json`: one object a session.
pub fn session(summary: &SessionSummary) -> Value {
    let s = &summary.session;
    json!({
        "name": s.name,
        "turns": summary.turns,
        "updated_ms": s.updated_at,
        "model": s.settings.model,
        "from": s.origin_session,
        "from_turn": summary.origin_turn,
        "last_prompt": summary.last_prompt.as_deref().map(sanitize),
        "images_to": s.out_dir.as_ref().map(|d| d.join(&s.name)),
    })
}
