//! PostgreSQL's binary `numeric`: what a `DECIMAL` (up to 38 digits) or `UBIGINT` value is sent
//! as to a client that asked for binary results.
//!
//! `rust_decimal`'s encoder (through `postgres-types`) holds 28 digits, fewer than DuckDB's
//! `DECIMAL(38, s)` and `HUGEINT`, and sends a zero without its scale (`0` for `0.00`), so this
//! one works from the unscaled integer and the column's scale directly. The format
//! (PostgreSQL's `numeric_send`): digit count, weight of the first digit, sign, display scale,
//! then base-10000 digits, all big-endian 16-bit; digits hold no leading or trailing zero
//! groups, the display scale keeps the value's scale.

use bytes::{BufMut, BytesMut};

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// Writes `unscaled × 10^-scale` in `numeric_send`'s form (without the length prefix).
pub fn write(unscaled: i128, scale: u32, buf: &mut BytesMut) {
    let sign = if unscaled < 0 { NEGATIVE } else { POSITIVE };
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    // The integer part and the fraction, both whole base-10000 groups around the point.
    let (int_part, frac_part) =
        if digits.len() > scale { digits.split_at(digits.len() - scale) } else { ("", digits.as_str()) };
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{}{frac_part}", "0".repeat(scale - frac_part.len()));
    let frac_padded = format!("{frac_padded}{}", "0".repeat((4 - frac_padded.len() % 4) % 4));
    let group = |s: &str| s.parse::<i16>().unwrap_or(0);
    let int_groups: Vec<i16> =
        int_padded.as_bytes().chunks(4).map(|c| group(std::str::from_utf8(c).unwrap_or("0"))).collect();
    let frac_groups: Vec<i16> =
        frac_padded.as_bytes().chunks(4).map(|c| group(std::str::from_utf8(c).unwrap_or("0"))).collect();
    let mut weight = int_groups.len() as i16 - 1;
    let mut groups: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        // zero: no digits, weight 0, positive, the scale kept
        buf.put_u16(0);
        buf.put_i16(0);
        buf.put_u16(POSITIVE);
        buf.put_u16(scale as u16);
        return;
    }
    buf.put_u16(groups.len() as u16);
    buf.put_i16(weight);
    buf.put_u16(sign);
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(unscaled: i128, scale: u32) -> Vec<i16> {
        let mut buf = BytesMut::new();
        write(unscaled, scale, &mut buf);
        buf.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn values_as_postgresql_sends_them() {
        // ndigits, weight, sign, dscale, digits: as `SELECT x::numeric` sends them.
        assert_eq!(encoded(0, 2), [0, 0, 0, 2], "0.00 keeps its scale");
        assert_eq!(encoded(1850, 2), [2, 0, 0, 2, 18, 5000], "18.50");
        assert_eq!(encoded(-10, 2), [1, -1, 0x4000, 2, 1000], "-0.10");
        assert_eq!(encoded(100, 0), [1, 0, 0, 0, 100]);
        assert_eq!(encoded(10_000, 0), [1, 1, 0, 0, 1], "trailing zero groups dropped, weight kept");
        assert_eq!(encoded(123_456_789, 4), [3, 1, 0, 4, 1, 2345, 6789], "12345.6789");
        assert_eq!(encoded(5, 9), [1, -3, 0, 9, 5000], "0.000000005");
        let max = 10i128.pow(38) - 1;
        let got = encoded(max, 0);
        assert_eq!(got[..4], [10, 9, 0, 0], "38 nines: ten groups, the first of two digits");
        assert_eq!(got[4], 99);
        assert!(got[5..].iter().all(|g| *g == 9999));
        assert_eq!(encoded(-max, 38)[..4], [10, -1, 0x4000, 38]);
    }
}
