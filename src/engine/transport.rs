//! How a turn reaches the model: the choice inside the turn's one flow (`turn.rs`: build, ask, record, write).
//!
//! - `generate` (the default): `generateContent` with the whole thread, as the context policy trims it.
//! - `interactions`: Google's Interactions API keeps the conversation. A turn names its parent's interaction
//!   (`previous_interaction_id`, kept in the parent model content's [`TurnMeta::interaction_id`]) and sends only the
//!   new user input, so `/branch`, `/undo`, `/retry` and any turn reached by label continue from the right
//!   interaction with nothing re-sent. The answer is stored as the `Content` generateContent would have given
//!   (`gemini::interactions::convert`), so the local store stays the source of truth and a thread can move between
//!   transports at any turn.
//!
//! When the parent has no interaction (made with generateContent, imported, fetched from a batch) or the server no
//! longer has it (expired, another key, deleted: [`GeminiError::InteractionGone`]), the whole thread goes out once
//! as steps read from the store, the person is told in one notice, and the new interaction id is stored so the
//! next turn chains from it.
//!
//! Wire details and their sources are in `gemini/interactions/` (SDK google-genai 3.6.1 and Google's docs): steps
//! as input, `response_format` for the image, `generation_config` and `tools` sent every turn because they are not
//! inherited (docs, "server-side state management"), `tools: [{"type": "google_search", "search_types": [...]}]`
//! (SDK `_gaos/types/interactions/googlesearch.py`).
//!
//! [`TurnMeta::interaction_id`]: crate::store::TurnMeta::interaction_id

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use super::Engine;
use super::context::Measure;
use super::events::{Event, Events};
use crate::gemini::body::{BlobSource, Body, Marks};
use crate::gemini::interactions::{
    self, CreateInteraction, Delivery, GenerationConfig, ImageResponseFormat, Interaction,
};
use crate::gemini::outcome::{Outcome, classify};
use crate::gemini::{Backend, Client, Content, GeminiError, GenerateContentRequest, Progress};
use crate::gemini::{models, types::GenerationConfig as GenerateConfig};
use crate::settings::{Settings, Transport};
use crate::text;

/// Run-wide options of the Interactions transport (from the config file).
#[derive(Debug, Clone)]
pub struct InteractionOptions {
    /// How generated images come back: inline (base64 in the answer) or by `uri`, which peel downloads and
    /// stores inline like any other answer image.
    pub delivery: Delivery,
    /// The largest image fetched for a `uri` delivery.
    pub max_image_bytes: u64,
}

impl Default for InteractionOptions {
    fn default() -> Self {
        InteractionOptions {
            delivery: Delivery::Inline,
            max_image_bytes: interactions::DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

/// A turn's request, built and checked, ready to be sent (and sent again by a retry).
// One a turn, never in a collection: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Prepared {
    Generate {
        request: GenerateContentRequest,
        size: Measure,
    },
    Interactions(InteractionTurn),
}

/// One create of the Interactions API.
pub(super) struct InteractionTurn {
    create: CreateInteraction,
    marks: Marks,
    /// The exact body length.
    bytes: u64,
    /// Why the whole thread goes out instead of only the new input (said once, as a notice), if it does.
    whole: Option<String>,
}

/// What came back, in the turn's terms, whichever API answered.
pub(super) struct Reply {
    pub outcome: Outcome,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
    /// The answer's interaction, for the next turn to continue from.
    pub interaction_id: Option<String>,
    /// Bytes of request body sent for this turn (both requests when a lost thread had to be sent whole).
    pub request_bytes: u64,
}

impl Engine {
    /// `/transport generate|interactions`: kept with the session. Refused where the Interactions API is not
    /// offered (Vertex AI).
    pub fn set_transport(&mut self, transport: Transport) -> Result<()> {
        if transport == Transport::Interactions
            && let Backend::Remote(client) = &self.backend
            && !client.is_gemini_api()
        {
            bail!(
                "the interactions transport is offered on the Gemini API only, and this profile talks to Vertex \
                 AI; turns go with generateContent"
            );
        }
        self.session.settings.transport = transport;
        self.session.save_settings(&self.store)
    }

    /// For `/context` on the interactions transport: what the next request carries instead of the thread.
    pub fn transport_context(&self) -> Result<Option<String>> {
        if self.session.settings.transport != Transport::Interactions || self.is_offline() {
            return Ok(None);
        }
        let previous = match self.session.head() {
            Some(head) => self.store.interaction_id(head)?,
            None => None,
        };
        Ok(Some(match previous {
            Some(id) => format!(
                "transport interactions: the server keeps this thread (interaction {}), so the next request \
                 carries only the new prompt and its attachments; the figures above are what the thread would \
                 weigh sent whole (as it is once if the server has lost it)",
                crate::untrusted::sanitize(&id)
            ),
            None if self.session.head().is_some() => {
                "transport interactions: the last turn was not made over \
                 the Interactions API, so the next request carries the whole thread as above, once"
                    .to_string()
            }
            None => "transport interactions: the first request starts the thread on the server"
                .to_string(),
        }))
    }

    /// The request of a turn for `user` after `parent`, over the session's transport.
    pub(super) fn prepare(&self, user: &Content, parent: Option<i64>) -> Result<Prepared> {
        let settings = &self.session.settings;
        let interactions = match (&self.backend, settings.transport) {
            (_, Transport::Generate) => false,
            // The local stand-in answers like generateContent whatever the transport.
            (Backend::Offline, Transport::Interactions) => false,
            (Backend::Remote(client), Transport::Interactions) => {
                if !client.is_gemini_api() {
                    bail!(
                        "not sent: the interactions transport is offered on the Gemini API only, and this profile \
                         talks to Vertex AI; /transport generate sends the turn with generateContent"
                    );
                }
                true
            }
            (Backend::NoKey(_), Transport::Interactions) => true,
        };
        if !interactions {
            let (request, size) = self.build_request(user, parent)?;
            return Ok(Prepared::Generate { request, size });
        }
        let previous = match parent {
            Some(parent) => self.store.interaction_id(parent)?,
            None => None,
        };
        let whole = match (parent, &previous) {
            (None, _) | (Some(_), Some(_)) => None,
            (Some(parent), None) => Some(format!(
                "turn {} was not made with the Interactions API, so this turn sends the whole thread",
                self.store.turn_of(parent)?
            )),
        };
        let turn = self.interaction_turn(user, parent, previous, whole)?;
        Ok(Prepared::Interactions(turn))
    }

    /// A create for `user`: after `previous` with only the new input, or (without one) the whole thread up to
    /// `parent` as steps, with the reason it goes whole.
    fn interaction_turn(
        &self,
        user: &Content,
        parent: Option<i64>,
        previous: Option<String>,
        whole: Option<String>,
    ) -> Result<InteractionTurn> {
        let settings = &self.session.settings;
        let mut contents = match &previous {
            Some(_) => vec![user.clone()],
            None => {
                let mut contents = self.thread_for(parent, &settings.model)?;
                contents.push(user.clone());
                settings.context.apply(contents)
            }
        };
        super::context::check_references(settings, &contents)?;
        let mut marks = Marks::new();
        marks.fill(&mut contents);
        let input = interactions::thread_steps(&contents).map_err(anyhow::Error::new)?;
        let create = CreateInteraction {
            model: settings.model.clone(),
            input,
            previous_interaction_id: previous,
            stream: self.stream.then_some(true),
            ..interaction_settings(settings, &self.interaction_options)?
        };
        let json = serde_json::to_string(&create)?;
        let bytes = Body::marked(&json, &marks, self.blobs.clone())
            .map_err(anyhow::Error::msg)?
            .len();
        let measure = Measure {
            bytes,
            ..Measure::default()
        };
        if let Some(over) = measure.over(&self.limits()) {
            let fix = if create.previous_interaction_id.is_some() {
                "/detach drops the attachments".to_string()
            } else {
                "the thread goes whole this once (the server has no state to continue from); /context last N \
                 sends only the last N turns, /fresh starts a new branch from the current image"
                    .to_string()
            };
            bail!("not sent: {over}; {fix}");
        }
        Ok(InteractionTurn {
            create,
            marks,
            bytes,
            whole: whole.map(|why| {
                format!(
                    "{why} ({}) once; the next turns send only what is new",
                    text::bytes(bytes)
                )
            }),
        })
    }

    /// Sends a prepared turn and reads its answer, reporting progress through `progress` and notices through
    /// `events`. A thread the server has lost is sent again whole from the store.
    /// `take` is which take of its turn the answer will be (the offline stand-in draws each one differently).
    pub(super) async fn send_prepared(
        &self,
        prepared: &Prepared,
        user: &Content,
        parent: Option<i64>,
        take: usize,
        events: &dyn Events,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<Reply> {
        let model = &self.session.settings.model;
        let turn = match prepared {
            Prepared::Generate { request, size } => {
                let response = self
                    .backend
                    .generate(model, request, &self.blobs, self.stream, take, progress)
                    .await
                    .context("the request failed; nothing was recorded")?;
                return Ok(Reply {
                    model_version: response.model_version.clone(),
                    response_id: response.response_id.clone(),
                    outcome: classify(response),
                    interaction_id: None,
                    request_bytes: size.bytes,
                });
            }
            Prepared::Interactions(turn) => turn,
        };
        let client = match &self.backend {
            Backend::Remote(client) => client,
            Backend::NoKey(why) => return Err(GeminiError::Credential(why.clone()).into()),
            Backend::Offline => bail!("the offline stand-in does not speak the Interactions API"),
        };
        if let Some(why) = &turn.whole {
            events.emit(Event::Notice(why));
        }
        let mut sent = turn.bytes;
        let interaction = match create(client, turn, &self.blobs, progress).await {
            Err(GeminiError::InteractionGone { id, error }) => {
                let whole = self.interaction_turn(user, parent, None, None)?;
                events.emit(Event::Notice(&format!(
                    "the server no longer has this thread (interaction {id}: {}); peel sends it whole from its \
                     own store this once ({}), and the next turns continue from the new interaction",
                    GeminiError::Api(error).short(),
                    text::bytes(whole.bytes)
                )));
                sent += whole.bytes;
                create(client, &whole, &self.blobs, progress).await
            }
            other => other,
        };
        let mut interaction = interaction.map_err(|e| explain(e, client, turn))?;
        client
            .inline_uri_images(&mut interaction, self.interaction_options.max_image_bytes)
            .await
            .context("the answer's image could not be downloaded; nothing was recorded")?;
        let mut outcome = interactions::classify(&interaction)
            .context("the answer could not be read; nothing was recorded")?;
        // The credential out of what is kept (a hostile gateway could put it in the model's text, where it would
        // be stored, exported and shown), as generateContent's answers are in the client.
        if let Outcome::Answer { content, .. } = &mut outcome {
            client.scrub_content(content);
        }
        Ok(Reply {
            outcome,
            model_version: interaction.model.map(|m| client.scrubbed(m)),
            response_id: None,
            interaction_id: Some(client.scrubbed(interaction.id)).filter(|id| !id.is_empty()),
            request_bytes: sent,
        })
    }
}

async fn create(
    client: &Client,
    turn: &InteractionTurn,
    blobs: &Arc<dyn BlobSource>,
    progress: &dyn Fn(Progress<'_>),
) -> Result<Interaction, GeminiError> {
    client
        .create_interaction(&turn.create, &turn.marks, blobs, progress)
        .await
}

/// A failed create, in words: a server that does not know the API at all says so with a 404 to a first turn.
fn explain(error: GeminiError, client: &Client, turn: &InteractionTurn) -> anyhow::Error {
    let not_offered = turn.create.previous_interaction_id.is_none()
        && matches!(&error, GeminiError::Api(e) if e.http_status == 404 && !e.message.contains("models/"));
    if not_offered {
        return anyhow::Error::new(error).context(format!(
            "{} does not seem to offer the Interactions API; /transport generate sends turns with \
             generateContent; nothing was recorded",
            crate::untrusted::sanitize(client.server())
        ));
    }
    anyhow::Error::new(error).context("the request failed; nothing was recorded")
}

/// The session's settings as an interaction's `response_format`, `generation_config` and `tools`: the same checks
/// as generateContent's (a ratio or size the model does not take is refused before anything is sent).
fn interaction_settings(
    settings: &Settings,
    options: &InteractionOptions,
) -> Result<CreateInteraction> {
    let GenerateConfig {
        image_config,
        thinking_config,
        ..
    } = settings.generation_config()?;
    let image = image_config.unwrap_or_default();
    let response_format = ImageResponseFormat {
        aspect_ratio: image.aspect_ratio,
        image_size: image.image_size,
        delivery: (options.delivery == Delivery::Uri).then_some(Delivery::Uri),
        ..ImageResponseFormat::new()
    };
    let generation_config = thinking_config.map(|thinking| GenerationConfig {
        // The SDK spells levels in lowercase (`thinkinglevel.py`), as peel keeps them.
        thinking_level: thinking.thinking_level,
        thinking_summaries: thinking
            .include_thoughts
            .filter(|on| *on)
            .map(|_| "auto".into()),
        ..GenerationConfig::default()
    });
    let tools = if settings.search {
        let image_search = models::info(&settings.model).is_some_and(|m| m.image_search);
        if image_search {
            vec![json!({"type": "google_search", "search_types": ["web_search", "image_search"]})]
        } else {
            vec![json!({"type": "google_search"})]
        }
    } else {
        Vec::new()
    };
    Ok(CreateInteraction {
        response_format: Some(response_format),
        generation_config: generation_config.filter(|c| !c.is_empty()),
        tools,
        ..CreateInteraction::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_the_interaction_fields() {
        let settings = Settings {
            model: "gemini-3.1-flash-image".into(),
            aspect: Some("16:9".into()),
            size: Some("2K".into()),
            thoughts: true,
            think: Some("high".into()),
            search: true,
            ..Settings::default()
        };
        let options = InteractionOptions {
            delivery: Delivery::Uri,
            ..InteractionOptions::default()
        };
        let create = interaction_settings(&settings, &options).unwrap();
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            json!({
                "model": "",
                "response_format": {"type": "image", "aspect_ratio": "16:9", "image_size": "2K", "delivery": "uri"},
                "generation_config": {"thinking_level": "high", "thinking_summaries": "auto"},
                "tools": [{"type": "google_search", "search_types": ["web_search", "image_search"]}]
            })
        );
        let plain =
            interaction_settings(&Settings::default(), &InteractionOptions::default()).unwrap();
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"model": "", "response_format": {"type": "image", "image_size": "1K"}})
        );
        let refused = Settings {
            size: Some("512".into()),
            ..Settings::default()
        };
        assert!(interaction_settings(&refused, &InteractionOptions::default()).is_err());
    }
}
