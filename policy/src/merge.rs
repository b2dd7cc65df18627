//! Central + local: [`Policy::tightened_by`].
//!
//! The organisation may publish a central policy in the bucket; the user keeps a local one.
//! The effective policy is the central one tightened by the local one: the local file can
//! deny more, never allow more. That holds by construction rather than by rule rewriting:
//!
//! - **Rules** are not mixed. Each file stays a layer with its own rules and default action,
//!   every object is decided in every layer, and the strictest layer wins. (Concatenating
//!   the rule lists would be wrong: a local `cache` rule would then stop the central
//!   `default_action = "deny"` from applying, which loosens.)
//! - **Mode**: `deny` in either file wins.
//! - **Limits**: the smaller `max_cache`, `max_age` and `keep_snapshots`, the larger
//!   `min_free_disk` (a byte count and a percentage, if both appear, are both kept and both
//!   honoured). A limit only one file sets is taken from it; defaults apply only when neither
//!   does, so a silent central policy does not clamp the local one to a default.
//! - **Schedules** govern when data moves, not what may be stored (prewarm only fetches what
//!   the rules allow), so the local file may set them: its `[refresh]` and `[evict]` replace
//!   the central ones, and a local `[[prewarm]]` replaces a central job of the same name.

use crate::limits::Limits;
use crate::policy::Policy;
use crate::schedule::Schedules;
use crate::setting::Setting;

/// The setting with the smaller value (the first on a tie), or whichever is set.
fn smaller<T: Ord + Clone>(a: &Option<Setting<T>>, b: &Option<Setting<T>>) -> Option<Setting<T>> {
    match (a, b) {
        (Some(a), Some(b)) if b.value < a.value => Some(b.clone()),
        (Some(a), _) => Some(a.clone()),
        (None, b) => b.clone(),
    }
}

/// The setting with the larger value (the first on a tie), or whichever is set.
fn larger<T: Ord + Clone>(a: &Option<Setting<T>>, b: &Option<Setting<T>>) -> Option<Setting<T>> {
    match (a, b) {
        (Some(a), Some(b)) if b.value > a.value => Some(b.clone()),
        (Some(a), _) => Some(a.clone()),
        (None, b) => b.clone(),
    }
}

impl Limits {
    /// The stricter of two sets of limits, field by field.
    pub fn tightened_by(&self, other: &Limits) -> Limits {
        Limits {
            max_cache: smaller(&self.max_cache, &other.max_cache),
            min_free_bytes: larger(&self.min_free_bytes, &other.min_free_bytes),
            min_free_basis_points: larger(&self.min_free_basis_points, &other.min_free_basis_points),
            max_age: smaller(&self.max_age, &other.max_age),
            keep_snapshots: smaller(&self.keep_snapshots, &other.keep_snapshots),
        }
    }
}

impl Policy {
    /// The effective policy: `self` (the central policy) tightened by `local`. For every table
    /// and column, the result's action is the stricter of the two policies' actions; every
    /// limit is the stricter of the two (see the module docs).
    pub fn tightened_by(&self, local: &Policy) -> Policy {
        let mut prewarm: Vec<_> = self
            .schedules
            .prewarm
            .iter()
            .filter(|job| local.schedules.prewarm_job(&job.name).is_none())
            .cloned()
            .collect();
        prewarm.extend(local.schedules.prewarm.iter().cloned());
        Policy {
            mode: larger(&self.mode, &local.mode),
            layers: self.layers.iter().chain(&local.layers).cloned().collect(),
            limits: self.limits.tightened_by(&local.limits),
            schedules: Schedules {
                refresh: local.schedules.refresh.clone().or_else(|| self.schedules.refresh.clone()),
                evict: local.schedules.evict.clone().or_else(|| self.schedules.evict.clone()),
                prewarm,
            },
        }
    }
}
