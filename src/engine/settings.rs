//! Changing the settings for the next turns. A change the model will not take is refused before anything is
//! stored; a model switch names every setting the new model does not take, and what it would become.

use anyhow::Result;

use super::Engine;
use crate::gemini::models::{self, Thinking};
use crate::settings::Settings;

/// A setting the new model does not take, and what it becomes if the switch goes ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub setting: &'static str,
    pub value: String,
    pub becomes: String,
}

/// What `/model ID` would do.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSwitch {
    /// The id to use (a retired preview id maps to its GA id).
    pub id: String,
    /// Said when the asked id was a retired alias.
    pub notice: Option<String>,
    /// The id is not in peel's model table: it is sent as given, unchecked.
    pub unknown: bool,
    /// What the new model does not take; empty when the switch needs no other change.
    pub conflicts: Vec<Conflict>,
    /// The models that made this session's earlier turns, other than the new one.
    pub earlier_models: Vec<String>,
}

impl Engine {
    /// What switching to `id` would change.
    pub fn plan_model(&self, id: &str) -> Result<ModelSwitch> {
        let (id, notice) = models::resolve(id);
        let current = &self.session.settings;
        // What the model takes as this run's provider passes it on (a gateway may take fewer ratios or sizes).
        let caps = models::capabilities(&id);
        let mut conflicts = Vec::new();
        if let Some(caps) = &caps {
            let info = caps.info;
            let default_size = if info.sizes.is_empty() {
                "none (this model has no size choice)".to_string()
            } else {
                format!("{} (the default)", crate::settings::DEFAULT_SIZE)
            };
            if let Some(aspect) = current.aspect.as_ref().filter(|a| !caps.takes_ratio(a)) {
                conflicts.push(Conflict {
                    setting: "aspect",
                    value: aspect.clone(),
                    becomes: "auto".into(),
                });
            }
            if let Some(size) = current.size.as_ref().filter(|s| !caps.takes_size(s)) {
                conflicts.push(Conflict {
                    setting: "size",
                    value: size.clone(),
                    becomes: default_size,
                });
            }
            if current.thoughts && info.thinking == Thinking::None {
                conflicts.push(Conflict {
                    setting: "thoughts",
                    value: "on".into(),
                    becomes: "off".into(),
                });
            }
            if let Some(level) = current
                .think
                .as_ref()
                .filter(|_| info.thinking != Thinking::Levels)
            {
                conflicts.push(Conflict {
                    setting: "think",
                    value: level.clone(),
                    becomes: "auto".into(),
                });
            }
            if current.search && !info.search {
                conflicts.push(Conflict {
                    setting: "search",
                    value: "on".into(),
                    becomes: "off".into(),
                });
            }
        }
        let mut earlier_models: Vec<String> = Vec::new();
        for turn in self.turns()? {
            if let Some(model) = turn.model.meta.settings.map(|s| s.model)
                && model != id
                && !earlier_models.contains(&model)
            {
                earlier_models.push(model);
            }
        }
        Ok(ModelSwitch {
            unknown: caps.is_none(),
            id,
            notice,
            conflicts,
            earlier_models,
        })
    }

    /// Switches to the planned model, changing the settings it does not take as the plan says.
    pub fn switch_model(&mut self, plan: &ModelSwitch) -> Result<()> {
        self.change_settings(|s| {
            s.model = plan.id.clone();
            for conflict in &plan.conflicts {
                match conflict.setting {
                    "aspect" => s.aspect = None,
                    "size" => s.size = None,
                    "thoughts" => s.thoughts = false,
                    "think" => s.think = None,
                    "search" => s.search = false,
                    _ => {}
                }
            }
        })
    }

    /// `/aspect RATIO|auto`.
    pub fn set_aspect(&mut self, ratio: &str) -> Result<()> {
        let aspect = match ratio {
            "auto" => None,
            other => Some(models::normalize_ratio(other)?),
        };
        self.change_settings(|s| s.aspect = aspect)
    }

    /// `/size SIZE|auto`.
    pub fn set_size(&mut self, size: &str) -> Result<()> {
        let size = match size.to_ascii_lowercase().as_str() {
            "auto" | "default" => None,
            other => Some(models::normalize_size(other)?),
        };
        self.change_settings(|s| s.size = size)
    }

    pub fn set_thoughts(&mut self, on: bool) -> Result<()> {
        self.change_settings(|s| s.thoughts = on)
    }

    pub fn set_think(&mut self, level: Option<String>) -> Result<()> {
        self.change_settings(|s| s.think = level)
    }

    pub fn set_search(&mut self, on: bool) -> Result<()> {
        self.change_settings(|s| s.search = on)
    }

    /// Applies a change, refusing one the model will not take (and keeping the old settings then).
    fn change_settings(&mut self, change: impl FnOnce(&mut Settings)) -> Result<()> {
        self.check_still_there()?;
        let mut next = self.session.settings.clone();
        change(&mut next);
        next.generation_config()?;
        self.session.settings = next;
        self.session.save_settings(&self.store)
    }
}
