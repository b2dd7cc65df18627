//! Bound parameters of the extended protocol: each value is decoded by its parameter's type and
//! the format the client chose (in Bind), through pgwire's decoders (`FromSql` for binary,
//! `FromSqlText` for text), into the DuckDB value bound to `$n`.
//!
//! A parameter's type is the one the client declared (in Parse), else the one the SQL casts it to
//! (`$1::BIGINT`, `CAST($1 AS DATE)`). DuckDB resolves parameter types only when a statement is
//! bound, and its API does not report them after a prepare, so the server cannot infer more:
//! other parameters are described as `text`, and their text is bound as a string, which DuckDB
//! casts to whatever the query compares it with.

use super::statement::{skip_quoted, starts_with_ignore_case};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use duckdb::types::{TimeUnit, Value};
use pg_interval::Interval;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::api::stmt::StoredStatement;
use pgwire::error::PgWireError;
use pgwire::types::FromSqlText;
use postgres_types::FromSqlOwned;
use rust_decimal::Decimal;

use super::error::QueryError;
use super::statement::Statement;

/// Type names a cast may spell, longest first where one starts another, and the PostgreSQL type
/// a parameter cast to it is described as (DuckDB's `FLOAT` is four bytes).
const CAST_TYPES: &[(&str, Type)] = &[
    ("timestamp with time zone", Type::TIMESTAMPTZ),
    ("timestamptz", Type::TIMESTAMPTZ),
    ("timestamp", Type::TIMESTAMP),
    ("datetime", Type::TIMESTAMP),
    ("time", Type::TIME),
    ("date", Type::DATE),
    ("interval", Type::INTERVAL),
    ("double precision", Type::FLOAT8),
    ("double", Type::FLOAT8),
    ("float8", Type::FLOAT8),
    ("float4", Type::FLOAT4),
    ("float", Type::FLOAT4),
    ("real", Type::FLOAT4),
    ("bigint", Type::INT8),
    ("int8", Type::INT8),
    ("integer", Type::INT4),
    ("int4", Type::INT4),
    ("int", Type::INT4),
    ("smallint", Type::INT2),
    ("int2", Type::INT2),
    ("boolean", Type::BOOL),
    ("bool", Type::BOOL),
    ("numeric", Type::NUMERIC),
    ("decimal", Type::NUMERIC),
    ("uuid", Type::UUID),
    ("text", Type::TEXT),
    ("varchar", Type::VARCHAR),
    ("bytea", Type::BYTEA),
    ("blob", Type::BYTEA),
];

/// The type of each parameter of `stmt` (`$1` first): declared, else cast to, else unknown.
pub fn types(stmt: &StoredStatement<Statement>) -> Vec<Option<Type>> {
    let casts = match &stmt.statement {
        Statement::Query(sql) => casts(sql),
        _ => Vec::new(),
    };
    let declared = |i: usize| stmt.parameter_types.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN);
    (0..casts.len().max(stmt.parameter_types.len()))
        .map(|i| declared(i).or_else(|| casts.get(i).cloned().flatten()))
        .collect()
}

/// The parameter types announced for `stmt` (ParameterDescription): unknown ones as `text`.
pub fn described(stmt: &StoredStatement<Statement>) -> Vec<Type> {
    types(stmt).into_iter().map(|t| t.unwrap_or(Type::TEXT)).collect()
}

/// For each `$n` up to the highest one in `sql` (outside quotes), the type it is cast to, if any.
fn casts(sql: &str) -> Vec<Option<Type>> {
    let bytes = sql.as_bytes();
    let mut out: Vec<Option<Type>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i),
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = i + 1 + bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let Ok(n) = sql[i + 1..end].parse::<usize>() else { break };
                if n == 0 {
                    i = end;
                    continue;
                }
                if out.len() < n {
                    out.resize(n, None);
                }
                let rest = sql[end..].trim_start();
                let before = sql[..i].trim_end().to_ascii_lowercase();
                let target = if let Some(t) = rest.strip_prefix("::") {
                    Some(t)
                } else if before.ends_with("cast(") && starts_with_ignore_case(rest, "as ") {
                    Some(&rest[3..])
                } else {
                    None
                };
                if out[n - 1].is_none() {
                    out[n - 1] = target.and_then(cast_type);
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// The type a cast's target text starts with (not an array of it).
fn cast_type(target: &str) -> Option<Type> {
    let target = target.trim_start().to_ascii_lowercase();
    CAST_TYPES.iter().find_map(|(name, t)| {
        let after = target.strip_prefix(name)?;
        let boundary = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let array = after.trim_start().starts_with('[');
        (boundary && !array).then(|| t.clone())
    })
}

/// Every parameter of `portal` as the DuckDB value to bind.
pub fn values(portal: &Portal<Statement>) -> Result<Vec<Value>, QueryError> {
    let types = types(&portal.statement);
    (0..portal.parameter_len()).map(|i| value(portal, &types, i)).collect()
}

fn value(portal: &Portal<Statement>, types: &[Option<Type>], i: usize) -> Result<Value, QueryError> {
    let declared = types.get(i).cloned().flatten().unwrap_or(Type::UNKNOWN);
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
    fn casts_type_parameters() {
        let sql = "SELECT $1::BIGINT, '$2::date', CAST( $3 AS DATE), $4 :: timestamp with time zone, \
                   $5::INT[], $6, $7::decimal(10, 2), $3::text";
        assert_eq!(
            casts(sql),
            [Some(Type::INT8), None, Some(Type::DATE), Some(Type::TIMESTAMPTZ), None, None, Some(Type::NUMERIC)]
        );
        assert_eq!(casts("SELECT $2"), [None, None]);
    }

    #[test]
    fn pgjdbc_dates_get_a_time() {
        assert_eq!(date_with_zone("2024-01-01 +00").as_deref(), Some("2024-01-01 00:00:00+00"));
        assert_eq!(date_with_zone("2024-01-01 -05:30").as_deref(), Some("2024-01-01 00:00:00-05:30"));
        assert_eq!(date_with_zone("2024-01-01"), None);
        assert_eq!(date_with_zone("eu and us"), None);
        assert_eq!(date_with_zone("2024-01-01 12:00:00+00"), None);
    }
}
