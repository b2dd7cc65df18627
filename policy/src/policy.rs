//! [`Policy`]: the parsed, validated, possibly merged governance policy.

use std::fmt;

use serde::Serialize;

use crate::action::{Action, Mode};
use crate::decision::RuleId;
use crate::limits::Limits;
use crate::rule::Rule;
use crate::schedule::Schedules;
use crate::setting::{Origin, Setting};

/// The rules of one policy file. A merged policy keeps one layer per file (central first)
/// and decides every object in every layer, so a local file can never loosen what the central
/// one decided, whatever its rules say: see [`Policy::tightened_by`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub(crate) file: String,
    pub(crate) default_action: Option<Setting<Action>>,
    pub(crate) rules: Vec<Rule>,
}

impl Layer {
    /// The file the layer was parsed from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// `[local] default_action`: the action for objects no rule of this layer selects
    /// (default `cache`).
    pub fn default_action(&self) -> Action {
        self.default_action.as_ref().map_or(Action::Cache, |s| s.value)
    }

    /// The `[[rule]]`s, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// A governance policy: what of the lake may be shown and stored on this machine, the cache
/// limits, and the scheduled jobs. Parse one with [`Policy::parse`]; combine the central
/// and local ones with [`Policy::tightened_by`]; ask it with [`Policy::table_decision`],
/// [`Policy::column_decision`] and [`Policy::explain`].
///
/// [`Policy::default`] is the policy of a machine with no policy file: everything may be
/// cached, default limits, default schedules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub(crate) mode: Option<Setting<Mode>>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) limits: Limits,
    pub(crate) schedules: Schedules,
}

impl Policy {
    /// A policy that denies everything, for when the policy that should be in force cannot be
    /// known (the daemon's central policy is configured but has never been fetched): failing
    /// closed keeps data off the machine until it is. `why` stands in for the file that set
    /// `mode = "deny"`, so decisions and `explain` say why nothing is shown.
    pub fn deny_all(why: &str) -> Policy {
        Policy {
            mode: Some(Setting { value: Mode::Deny, origin: Origin { file: why.to_string(), line: 0 } }),
            ..Policy::default()
        }
    }

    /// `[local] mode` (default `allow`). With `deny`, every decision is `Deny`.
    pub fn mode(&self) -> Mode {
        self.mode.as_ref().map_or(Mode::Allow, |s| s.value)
    }

    /// `mode` as written, with its origin.
    pub fn mode_setting(&self) -> Option<&Setting<Mode>> {
        self.mode.as_ref()
    }

    /// The rule layers: one per policy file, central first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Every rule with its id, in evaluation order.
    pub fn rules(&self) -> impl Iterator<Item = (RuleId, &Rule)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(layer, l)| l.rules.iter().enumerate().map(move |(index, r)| (RuleId { layer, index }, r)))
    }

    /// The rule a [`crate::Decision`] names.
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.layers.get(id.layer)?.rules.get(id.index)
    }

    /// Cache limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Refresh, prewarm and evict jobs.
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }
}

/// The effective policy, as `warmlake policy check` prints it.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Some(s) => writeln!(f, "mode            {} ({})", s.value, s.origin)?,
            None => writeln!(f, "mode            allow (default)")?,
        }
        writeln!(f, "{}", self.limits)?;
        if self.layers.is_empty() {
            writeln!(f, "rules: none; everything may be cached")?;
        }
        for layer in &self.layers {
            let default = match &layer.default_action {
                Some(s) => format!("{} ({})", s.value, s.origin),
                None => "cache (default)".to_string(),
            };
            writeln!(f, "rules of {}, default action {default}:", layer.file)?;
            if layer.rules.is_empty() {
                writeln!(f, "  (none)")?;
            }
            for (i, rule) in layer.rules.iter().enumerate() {
                writeln!(f, "  {}. line {}: {rule}", i + 1, rule.origin.line)?;
            }
        }
        let refresh = self.schedules.refresh();
        let origin =
            |s: Option<&Setting<crate::Cron>>| s.map_or_else(|| "default".to_string(), |s| s.origin.to_string());
        writeln!(f, "refresh         {:?} ({})", refresh.source(), origin(self.schedules.refresh_setting()))?;
        write!(
            f,
            "evict           {:?} ({})",
            self.schedules.evict().source(),
            origin(self.schedules.evict_setting())
        )?;
        for job in self.schedules.prewarm() {
            write!(f, "\nprewarm         {job}")?;
        }
        Ok(())
    }
}
