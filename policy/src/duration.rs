//! Durations such as `"7d"`, `"12h"`, `"30m"`, `"1h30m"`, `"2 weeks"`.
//!
//! Units: `s`, `m`, `h`, `d`, `w` (and their spelt-out forms `sec`, `min`, `hour`, `day`,
//! `week`, singular or plural). Units are lower-case only: `M` is months to some people and
//! minutes to others, and there are no months here. A bare number is rejected rather than
//! guessed to be seconds.

use std::time::Duration;

const UNITS: &[(&[&str], u64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 3600),
    (&["d", "day", "days"], 86_400),
    (&["w", "week", "weeks"], 7 * 86_400),
];

/// Parses a duration; the error says what is wrong with it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration: write a number and a unit, such as \"7d\"".into());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!(
                "expected a number at `{rest}`: write a number and a unit, such as \"7d\" or \"1h30m\""
            ));
        }
        let number: u64 = rest[..digits_end].parse().map_err(|_| "number too large".to_string())?;
        rest = rest[digits_end..].trim_start();
        if rest.starts_with('.') {
            return Err("no fractions: write \"1h30m\" rather than \"1.5h\"".into());
        }
        let unit_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if unit.is_empty() {
            return Err(format!("`{number}` has no unit: write s, m, h, d or w, such as \"{number}d\""));
        }
        let seconds = UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit))
            .map(|(_, s)| *s)
            .ok_or_else(|| format!("unknown unit `{unit}` (use s, m, h, d or w)"))?;
        total = number.checked_mul(seconds).and_then(|s| total.checked_add(s)).ok_or("duration too large")?;
        rest = rest[unit_end..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Shows a duration as the admin would write it: `7d`, `1h30m`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("7d", 7 * 86_400),
            ("12h", 12 * 3600),
            ("30m", 1800),
            ("45s", 45),
            ("2w", 14 * 86_400),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("2 weeks", 14 * 86_400),
            ("1 day", 86_400),
            ("0s", 0),
            ("90 min", 5400),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text:?}");
        }
    }

    #[test]
    fn bad_durations() {
        for (text, needle) in [
            ("", "empty"),
            ("7", "has no unit"),
            ("7D", "unknown unit `D`"),
            ("1M", "unknown unit `M`"),
            ("7 fortnights", "unknown unit"),
            ("d", "expected a number"),
            ("-7d", "expected a number"),
            ("1.5h", "no fractions"),
            ("99999999999999999999w", "too large"),
            ("999999999999999999w", "too large"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for (secs, shown) in [(0, "0s"), (45, "45s"), (5400, "1h30m"), (7 * 86_400, "1w"), (8 * 86_400 + 1, "1w1d1s")] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), shown);
            assert_eq!(parse_duration(shown), Ok(d));
        }
    }
}
