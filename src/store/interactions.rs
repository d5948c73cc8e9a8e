//! What the Interactions transport reads of a stored thread: which interaction a model content is.

use anyhow::{Context as _, Result};
use rusqlite::OptionalExtension;

use super::Store;

impl Store {
    /// The Interactions API's id of a stored model content, when it was made over that API (see
    /// [`super::TurnMeta::interaction_id`]); `None` for a user content or a turn made any other way.
    pub fn interaction_id(&self, content_id: i64) -> Result<Option<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT json_extract(meta, '$.interaction_id') FROM contents WHERE id = ?1 AND role = 'model'",
        )?;
        Ok(stmt
            .query_row([content_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// The turn a content belongs to, counted from 1.
    pub fn turn_of(&self, content_id: i64) -> Result<i64> {
        let depth: i64 = self
            .conn
            .query_row(
                "SELECT depth FROM contents WHERE id = ?1",
                [content_id],
                |r| r.get(0),
            )
            .optional()?
            .with_context(|| format!("content {content_id} is not in the database"))?;
        Ok(depth / 2 + 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::gemini::{Content, Part};
    use crate::store::{NewSession, NewTurn, Store, TurnMeta};

    #[test]
    fn a_model_content_names_its_interaction() {
        let mut store = Store::open_in_memory().unwrap();
        let settings = Default::default();
        let session = store
            .create_session("s", NewSession::empty(&settings))
            .unwrap();
        let user = Content::user(vec![Part::text("a fox")]);
        let model = Content {
            role: Some("model".into()),
            parts: vec![Part::text("ok")],
            extra: Default::default(),
        };
        let meta = TurnMeta {
            interaction_id: Some("v1_abc".into()),
            ..TurnMeta::default()
        };
        let first = store
            .append_turn(
                session.id,
                None,
                None,
                NewTurn {
                    user: &user,
                    model: &model,
                    meta: &meta,
                },
            )
            .unwrap();
        let plain = TurnMeta::default();
        let second = store
            .append_turn(
                session.id,
                Some(first.model_id),
                Some(first.model_id),
                NewTurn {
                    user: &user,
                    model: &model,
                    meta: &plain,
                },
            )
            .unwrap();
        assert_eq!(
            store.interaction_id(first.model_id).unwrap().as_deref(),
            Some("v1_abc")
        );
        assert_eq!(store.interaction_id(first.user_id).unwrap(), None);
        assert_eq!(store.interaction_id(second.model_id).unwrap(), None);
        assert_eq!(store.turn_of(second.model_id).unwrap(), 2);
        assert_eq!(store.turn_of(first.user_id).unwrap(), 1);
    }
}
