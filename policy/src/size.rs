//! Byte sizes (`"50GiB"`, `"500MB"`, `"1.5 TiB"`, `1048576`) and disk percentages (`"10%"`).
//!
//! Units are `B`, decimal `KB MB GB TB PB` (powers of 1000) and binary `KiB MiB GiB TiB PiB`
//! (powers of 1024), in any letter case. A bare `K`, `M`, `G`, ... is rejected: half of all
//! tools read it as 1000 and the other half as 1024, and a budget should not depend on which
//! half the admin learnt from.

use std::fmt;

use serde::{Serialize, Serializer};

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("pb", 1000 * 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("pib", 1 << 50),
];

/// Splits `"1.5 GiB"` into the number `"1.5"` and the unit `"GiB"`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

/// Parses a non-negative decimal such as `"1.25"` into `(digits, scale)`: `(125, 2)`.
fn parse_decimal(number: &str) -> Result<(u128, u32), String> {
    let number = number.replace('_', "");
    let (int, frac) = number.split_once('.').unwrap_or((&number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err("no number".to_string());
    }
    if frac.contains('.') {
        return Err("more than one `.`".to_string());
    }
    if frac.len() > 18 {
        return Err("too many decimals".to_string());
    }
    let digits = format!("{int}{frac}");
    let value = digits.parse::<u128>().map_err(|_| "number too large".to_string())?;
    Ok((value, frac.len() as u32))
}

/// Parses a size into bytes (fractions of a byte are rounded down).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err("expected a number followed by a unit, such as \"50GiB\" or \"500MB\"".into());
    }
    let (digits, scale) = parse_decimal(number)?;
    let multiplier = if unit.is_empty() {
        1
    } else {
        let lower = unit.to_ascii_lowercase();
        match UNITS.iter().find(|(name, _)| *name == lower) {
            Some((_, m)) => *m,
            None if matches!(lower.as_str(), "k" | "m" | "g" | "t" | "p") => {
                let u = unit.to_ascii_uppercase();
                return Err(format!(
                    "ambiguous unit `{unit}`: write `{u}B` (powers of 1000) or `{u}iB` (powers of 1024)"
                ));
            }
            None => {
                return Err(format!("unknown unit `{unit}` (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)"));
            }
        }
    };
    if scale > 0 && unit.is_empty() {
        return Err("a fraction of a byte needs a unit, such as \"1.5GiB\"".into());
    }
    let bytes = digits.checked_mul(u128::from(multiplier)).map(|b| b / 10u128.pow(scale)).ok_or("size too large")?;
    u64::try_from(bytes).map_err(|_| "size too large (more than 2^64 bytes)".to_string())
}

/// Parses `"10%"` or `"2.5%"` into basis points (hundredths of a percent): 1000 or 250.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let number = text.trim().strip_suffix('%').ok_or("a percentage ends with `%`")?.trim_end();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err("expected a number before `%`, such as \"10%\"".into());
    }
    let (digits, scale) = parse_decimal(number)?;
    if scale > 2 {
        return Err("at most two decimals in a percentage".into());
    }
    let basis_points = digits * 10u128.pow(2 - scale);
    if basis_points > 10_000 {
        return Err("more than 100%".into());
    }
    u32::try_from(basis_points).map_err(|_| "more than 100%".to_string())
}

/// A number of bytes, shown in the largest unit that states it exactly (`50 GiB`, `500 MB`),
/// so that what `warmlake policy check` prints is what the admin wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: &[(&str, u64)] = &[
            ("PiB", 1 << 50),
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("PB", 1000 * 1000 * 1000 * 1000 * 1000),
            ("TB", 1000 * 1000 * 1000 * 1000),
            ("GB", 1000 * 1000 * 1000),
            ("MB", 1000 * 1000),
            ("KB", 1000),
        ];
        let bytes = self.0;
        if bytes > 0 {
            for (unit, size) in SHOWN {
                if bytes.is_multiple_of(*size) {
                    return write!(f, "{} {unit}", bytes / size);
                }
            }
        }
        write!(f, "{bytes} B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("1048576", 1 << 20),
            ("1_000", 1000),
            ("12B", 12),
            ("500MB", 500_000_000),
            ("500mb", 500_000_000),
            ("50GiB", 50 << 30),
            ("50 GiB", 50 << 30),
            (" 50gib ", 50 << 30),
            ("1.5GiB", 3 << 29),
            ("0.5KiB", 512),
            (".5KiB", 512),
            ("1.0001KB", 1000),
            ("2TB", 2_000_000_000_000),
            ("3TiB", 3 << 40),
            ("1PiB", 1 << 50),
            ("16383PiB", 16383 << 50),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(*bytes), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes() {
        for (text, needle) in [
            ("", "expected a number"),
            ("GiB", "expected a number"),
            ("-5GiB", "expected a number"),
            ("50G", "ambiguous unit `G`: write `GB`"),
            ("50k", "ambiguous unit `k`: write `KB`"),
            ("50 gigs", "unknown unit"),
            ("1.2.3GB", "more than one"),
            ("1.5", "fraction of a byte"),
            ("16384PiB", "too large"),
            ("99999999999999999999999999999999999999999", "too large"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn percents() {
        for (text, bp) in [("10%", 1000), ("0%", 0), ("2.5%", 250), ("2.55%", 255), ("100%", 10_000), (" 7 %", 700)] {
            assert_eq!(parse_percent(text), Ok(bp), "{text:?}");
        }
        for (text, needle) in [
            ("10", "ends with `%`"),
            ("%", "expected a number"),
            ("-1%", "expected a number"),
            ("101%", "more than 100%"),
            ("1.125%", "two decimals"),
        ] {
            let err = parse_percent(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn display_is_exact() {
        for (bytes, shown) in [
            (0, "0 B"),
            (12, "12 B"),
            (1024, "1 KiB"),
            (50 << 30, "50 GiB"),
            (500_000_000, "500 MB"),
            (3 << 29, "1536 MiB"),
            (1001, "1001 B"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), shown);
            assert_eq!(parse_size(shown), Ok(bytes), "round trip {shown}");
        }
    }
}
