//! Bound parameters of the extended protocol: each value is decoded by the type the client
//! declared for it (in Parse) and the format it chose (in Bind), through pgwire's decoders
//! (`FromSql` for binary, `FromSqlText` for text), into the DuckDB value bound to `$n`.
//!
//! DuckDB resolves a parameter's type only when the statement is bound, and its API does not
//! report it after a prepare, so the server cannot infer parameter types: the client's declared
//! types are the types. Parameters the client leaves untyped are described as `text`; their text
//! is bound as a string, which DuckDB casts to whatever the query compares it with.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use duckdb::types::{TimeUnit, Value};
use pg_interval::Interval;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::PgWireError;
use pgwire::types::FromSqlText;
use postgres_types::FromSqlOwned;
use rust_decimal::Decimal;

use super::error::QueryError;
use super::statement::Statement;

/// The type announced for parameter `index` of a statement: the client's, or `text`.
pub fn described_type(declared: &[Option<Type>], index: usize) -> Type {
    declared.get(index).cloned().flatten().filter(|t| *t != Type::UNKNOWN).unwrap_or(Type::TEXT)
}

/// Every parameter of `portal` as the DuckDB value to bind.
pub fn values(portal: &Portal<Statement>) -> Result<Vec<Value>, QueryError> {
    (0..portal.parameter_len()).map(|i| value(portal, i)).collect()
}

fn value(portal: &Portal<Statement>, i: usize) -> Result<Value, QueryError> {
    let declared = portal.statement.parameter_types.get(i).cloned().flatten().unwrap_or(Type::UNKNOWN);
    let bad = |message: String| QueryError::Parameter { index: i + 1, message };
    Ok(match declared {
        Type::BOOL => decode::<bool>(portal, i, &declared)?.map_or(Value::Null, Value::Boolean),
        Type::INT2 => decode::<i16>(portal, i, &declared)?.map_or(Value::Null, Value::SmallInt),
        Type::INT4 => decode::<i32>(portal, i, &declared)?.map_or(Value::Null, Value::Int),
        Type::INT8 => decode::<i64>(portal, i, &declared)?.map_or(Value::Null, Value::BigInt),
        Type::FLOAT4 => decode::<f32>(portal, i, &declared)?.map_or(Value::Null, Value::Float),
        Type::FLOAT8 => decode::<f64>(portal, i, &declared)?.map_or(Value::Null, Value::Double),
        Type::NUMERIC => match decode::<Decimal>(portal, i, &declared)? {
            None => Value::Null,
            Some(d) => {
                let scale = u8::try_from(d.scale()).map_err(|e| bad(e.to_string()))?;
                Value::Decimal(duckdb::types::Decimal::new(38, scale, d.mantissa()).map_err(|e| bad(e.to_string()))?)
            }
        },
        Type::DATE => match decode::<NaiveDate>(portal, i, &declared)? {
            None => Value::Null,
            Some(d) => {
                let days = d.signed_duration_since(DateTime::UNIX_EPOCH.date_naive()).num_days();
                Value::Date32(i32::try_from(days).map_err(|e| bad(e.to_string()))?)
            }
        },
        Type::TIMESTAMP => decode::<NaiveDateTime>(portal, i, &declared)?
            .map_or(Value::Null, |t| Value::Timestamp(TimeUnit::Microsecond, t.and_utc().timestamp_micros())),
        Type::TIMESTAMPTZ => decode::<DateTime<FixedOffset>>(portal, i, &declared)?
            .map_or(Value::Null, |t| Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())),
        Type::TIME => decode::<NaiveTime>(portal, i, &declared)?.map_or(Value::Null, |t| {
            let micros = i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000);
            Value::Time64(TimeUnit::Microsecond, micros)
        }),
        Type::INTERVAL => decode::<Interval>(portal, i, &declared)?.map_or(Value::Null, |v| Value::Interval {
            months: v.months,
            days: v.days,
            nanos: v.microseconds.saturating_mul(1000),
        }),
        Type::BYTEA => decode::<Vec<u8>>(portal, i, &declared)?.map_or(Value::Null, Value::Blob),
        Type::UUID => match portal.parameters.get(i).cloned().flatten() {
            None => Value::Null,
            Some(b) if portal.parameter_format.is_binary(i) => {
                if b.len() != 16 {
                    return Err(bad("a binary uuid is 16 bytes".into()));
                }
                Value::Text(super::encode::uuid_text(&b))
            }
            Some(b) => Value::Text(String::from_utf8(b.to_vec()).map_err(|e| bad(e.to_string()))?),
        },
        // text, varchar, unknown, json ...: the text itself (binary text is the text, too)
        other => match portal.parameters.get(i).cloned().flatten() {
            None => Value::Null,
            Some(_) if portal.parameter_format.is_binary(i) && !is_textual(&other) => {
                return Err(bad(format!("binary format is not supported for type {}", other.name())));
            }
            Some(b) => {
                let text = String::from_utf8(b.to_vec()).map_err(|e| bad(e.to_string()))?;
                Value::Text(if other == Type::UNKNOWN { date_with_zone(&text).unwrap_or(text) } else { text })
            }
        },
    })
}

/// pgjdbc sends `setDate` values untyped as `YYYY-MM-DD +HH[:MM]`, which PostgreSQL reads as a
/// date, a timestamp or a timestamptz as the query needs; DuckDB reads none of them, but reads
/// the same instant written with its time, `YYYY-MM-DD 00:00:00+HH[:MM]`, as any of the three.
fn date_with_zone(text: &str) -> Option<String> {
    let (date, zone) = text.split_once(' ')?;
    let date_like = date.len() == 10 && date.bytes().enumerate().all(|(i, b)| (i == 4 || i == 7) == (b == b'-'));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let zone_like = zone.strip_prefix(['+', '-']).is_some_and(|z| match z.split_once(':') {
        Some((h, m)) => h.len() == 2 && digits(h) && m.len() == 2 && digits(m),
        None => z.len() == 2 && digits(z),
    });
    (date_like && zone_like && digits(&date.replace('-', ""))).then(|| format!("{date} 00:00:00{zone}"))
}

/// Types whose binary form is their text.
fn is_textual(t: &Type) -> bool {
    [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN, Type::JSON].contains(t)
}

/// Parameter `i` as `T` (None for NULL), decoded by the client's format.
fn decode<T>(portal: &Portal<Statement>, i: usize, t: &Type) -> Result<Option<T>, QueryError>
where
    T: FromSqlOwned + for<'a> FromSqlText<'a>,
{
    portal.parameter::<T>(i, t).map_err(|e| QueryError::Parameter {
        index: i + 1,
        message: match e {
            PgWireError::FailedToParseParameter(inner) => inner.to_string(),
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgjdbc_dates_get_a_time() {
        assert_eq!(date_with_zone("2024-01-01 +00").as_deref(), Some("2024-01-01 00:00:00+00"));
        assert_eq!(date_with_zone("2024-01-01 -05:30").as_deref(), Some("2024-01-01 00:00:00-05:30"));
        assert_eq!(date_with_zone("2024-01-01"), None);
        assert_eq!(date_with_zone("eu and us"), None);
        assert_eq!(date_with_zone("2024-01-01 12:00:00+00"), None);
    }
}
