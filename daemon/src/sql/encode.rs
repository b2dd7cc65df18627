//! DuckDB results (Arrow batches) as PostgreSQL rows: the type each column is announced as,
//! and each value in PostgreSQL's text format (binary for the simple scalar types). Values are
//! written straight into `DataRow` buffers on the session's thread, so the async side only
//! forwards bytes.

use arrow::array::{Array, ArrayRef, AsArray, GenericStringArray, PrimitiveArray, RecordBatch, StringViewArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType,
    IntervalUnit, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveTime, TimeDelta};
use duckdb::core::LogicalTypeId;
use pg_interval::Interval;
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;
use postgres_types::ToSql;
use rust_decimal::Decimal;

/// The PostgreSQL type a DuckDB column is announced as. Nested values (lists, structs, maps,
/// unions) travel as JSON text; types PostgreSQL has no match for travel as `text`.
pub fn pg_type(logical: LogicalTypeId, arrow: &DataType) -> Type {
    use LogicalTypeId as L;
    match logical {
        L::Boolean => Type::BOOL,
        L::Tinyint | L::Smallint | L::UTinyint => Type::INT2,
        L::Integer | L::USmallint => Type::INT4,
        L::Bigint | L::UInteger => Type::INT8,
        L::UBigint | L::Hugeint | L::UHugeint | L::Decimal => Type::NUMERIC,
        L::Float => Type::FLOAT4,
        L::Double => Type::FLOAT8,
        L::Varchar => Type::TEXT,
        L::Blob => Type::BYTEA,
        L::Date => Type::DATE,
        L::Time => Type::TIME,
        L::Timestamp | L::TimestampS | L::TimestampMs | L::TimestampNs => Type::TIMESTAMP,
        L::TimestampTZ => Type::TIMESTAMPTZ,
        L::Uuid => Type::UUID,
        L::Interval => Type::INTERVAL,
        L::List | L::Struct | L::Map | L::Array | L::Union => Type::JSON,
        _ => match arrow {
            DataType::Boolean => Type::BOOL,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
            DataType::Int32 | DataType::UInt16 => Type::INT4,
            DataType::Int64 | DataType::UInt32 => Type::INT8,
            DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
            DataType::Float32 => Type::FLOAT4,
            DataType::Float64 => Type::FLOAT8,
            DataType::Date32 | DataType::Date64 => Type::DATE,
            DataType::Timestamp(_, None) => Type::TIMESTAMP,
            DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
            DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
            DataType::Interval(IntervalUnit::MonthDayNano) => Type::INTERVAL,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..) => Type::JSON,
            _ => Type::TEXT,
        },
    }
}

/// How timestamps and times print: PostgreSQL's ISO style (a space, not `T`).
const FORMAT: FormatOptions<'static> = FormatOptions::new()
    .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"))
    .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    .with_time_format(Some("%H:%M:%S%.f"));

/// A column of the result as announced to the client.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub pg_type: Type,
    pub format: FieldFormat,
}

impl Column {
    /// The column as a RowDescription announces it.
    pub fn field_info(&self) -> FieldInfo {
        FieldInfo::new(self.name.clone(), None, None, self.pg_type.clone(), self.format)
    }
}

/// The size of the buffers rows are encoded into (see [`encode_batch`]).
const ROWS_BUFFER: usize = 64 * 1024;

/// Encodes every row of `batch` and hands each to `emit`; stops at the first error.
pub fn encode_batch(batch: &RecordBatch, columns: &[Column], mut emit: impl FnMut(DataRow)) -> Result<(), String> {
    let displays: Vec<ArrayRef> = batch.columns().iter().map(utc_offset).collect::<Result<_, _>>()?;
    let mut renderers = Vec::with_capacity(columns.len());
    for ((array, display), column) in batch.columns().iter().zip(&displays).zip(columns) {
        renderers.push(Renderer::new(array, display, column)?);
    }
    let field_count = i16::try_from(columns.len()).map_err(|_| "too many columns".to_owned())?;
    // Rows are split off one buffer: a split row shares its allocation, so a row costs no
    // allocation of its own, and when the buffer is full `bytes` allocates another of this
    // size (rows then are 1 allocation per ~64 KiB, not 1 each; a row per allocation made
    // malloc/free most of the socket's time for large results).
    let mut buf = BytesMut::with_capacity(ROWS_BUFFER);
    let mut scratch = String::new();
    for row in 0..batch.num_rows() {
        for r in &renderers {
            r.write(row, &mut buf, &mut scratch)?;
        }
        emit(DataRow::new(buf.split(), field_count));
    }
    Ok(())
}

/// Writes one column's values in the wire format asked for.
struct Renderer<'a> {
    array: &'a ArrayRef,
    /// The column's values when they are of a type written without per-value dispatch.
    plain: Option<Plain<'a>>,
    /// Whether any value may be NULL (a NULL-typed column, `SELECT NULL`, has no validity
    /// buffer: every value is NULL).
    nullable: bool,
    /// Formats `display`: the array itself, or its timestamps relabelled to `+00:00` (Arrow
    /// formats named time zones such as DuckDB's `UTC` only with chrono-tz; the instants are
    /// the same).
    formatter: ArrayFormatter<'a>,
    pg_type: Type,
    binary: bool,
}

impl<'a> Renderer<'a> {
    fn new(array: &'a ArrayRef, display: &'a ArrayRef, column: &Column) -> Result<Self, String> {
        let formatter = ArrayFormatter::try_new(display.as_ref(), &FORMAT).map_err(|e| e.to_string())?;
        let binary = column.format == FieldFormat::Binary;
        if binary && !binary_supported(&column.pg_type) {
            return Err(format!("binary format is not supported for type {}", column.pg_type.name()));
        }
        let plain = Plain::of(array, &column.pg_type);
        let nullable = array.null_count() > 0 || array.data_type() == &DataType::Null;
        Ok(Self { array, plain, nullable, formatter, pg_type: column.pg_type.clone(), binary })
    }

    fn write(&self, row: usize, buf: &mut BytesMut, scratch: &mut String) -> Result<(), String> {
        if self.nullable && (self.array.is_null(row) || self.array.data_type() == &DataType::Null) {
            buf.put_i32(-1);
            return Ok(());
        }
        if let Some(plain) = &self.plain {
            return plain.write(row, self.binary, buf);
        }
        let len_at = buf.len();
        buf.put_i32(0);
        if self.binary {
            self.write_binary(row, buf, scratch)?;
        } else {
            self.write_text(row, buf, scratch)?;
        }
        let len = i32::try_from(buf.len() - len_at - 4).map_err(|_| "value too large".to_owned())?;
        buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn write_text(&self, row: usize, buf: &mut BytesMut, scratch: &mut String) -> Result<(), String> {
        use std::fmt::Write;
        match self.array.data_type() {
            DataType::Boolean => buf.put_slice(if self.array.as_boolean().value(row) { b"t" } else { b"f" }),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_)
                if self.pg_type == Type::BYTEA =>
            {
                buf.put_slice(b"\\x");
                for byte in binary_value(self.array, row) {
                    buf.put_slice(format!("{byte:02x}").as_bytes());
                }
            }
            DataType::FixedSizeBinary(16) if self.pg_type == Type::UUID => {
                buf.put_slice(uuid_text(binary_value(self.array, row)).as_bytes());
            }
            DataType::Float32 | DataType::Float64 => {
                scratch.clear();
                write!(scratch, "{}", self.formatter.value(row)).map_err(|e| e.to_string())?;
                buf.put_slice(match scratch.as_str() {
                    "inf" => b"Infinity",
                    "-inf" => b"-Infinity",
                    s => s.as_bytes(),
                });
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                buf.put_slice(interval(self.array, row).to_postgres().as_bytes());
            }
            _ if self.pg_type == Type::JSON => {
                let value = json_value(self.array.as_ref(), row)?;
                buf.put_slice(value.to_string().as_bytes());
            }
            _ => {
                scratch.clear();
                write!(scratch, "{}", self.formatter.value(row)).map_err(|e| e.to_string())?;
                buf.put_slice(scratch.as_bytes());
            }
        }
        Ok(())
    }

    fn write_binary(&self, row: usize, buf: &mut BytesMut, scratch: &mut String) -> Result<(), String> {
        use std::fmt::Write;
        let a = self.array;
        match a.data_type() {
            DataType::Boolean => buf.put_u8(u8::from(a.as_boolean().value(row))),
            DataType::Int8 => buf.put_i16(i16::from(a.as_primitive::<Int8Type>().value(row))),
            DataType::Int16 => buf.put_i16(a.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => buf.put_i32(a.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => buf.put_i64(a.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => buf.put_i16(i16::from(a.as_primitive::<arrow::datatypes::UInt8Type>().value(row))),
            DataType::UInt16 => buf.put_i32(i32::from(a.as_primitive::<arrow::datatypes::UInt16Type>().value(row))),
            DataType::UInt32 => buf.put_i64(i64::from(a.as_primitive::<arrow::datatypes::UInt32Type>().value(row))),
            DataType::Float32 => buf.put_f32(a.as_primitive::<arrow::datatypes::Float32Type>().value(row)),
            DataType::Float64 => buf.put_f64(a.as_primitive::<arrow::datatypes::Float64Type>().value(row)),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                buf.put_slice(binary_value(a, row))
            }
            // DuckDB hands UUIDs to Arrow as their text
            _ if self.pg_type == Type::UUID => {
                scratch.clear();
                write!(scratch, "{}", self.formatter.value(row)).map_err(|e| e.to_string())?;
                buf.put_slice(&hex::decode(scratch.replace('-', "")).map_err(|e| format!("invalid uuid: {e}"))?);
            }
            DataType::Date32 => {
                let days = a.as_primitive::<Date32Type>().value(row);
                let date = DateTime::UNIX_EPOCH.date_naive().checked_add_signed(TimeDelta::days(i64::from(days)));
                to_sql(&date.ok_or("date out of range")?, &Type::DATE, buf)?;
            }
            DataType::Time64(TimeUnit::Microsecond) => {
                let micros = a.as_primitive::<Time64MicrosecondType>().value(row);
                let time = NaiveTime::MIN.overflowing_add_signed(TimeDelta::microseconds(micros)).0;
                to_sql(&time, &self.pg_type, buf)?;
            }
            DataType::Timestamp(unit, tz) => {
                let micros = timestamp_micros(a, *unit, row);
                let t = DateTime::from_timestamp_micros(micros).ok_or("timestamp out of range")?;
                match tz {
                    Some(_) => to_sql(&t, &Type::TIMESTAMPTZ, buf)?,
                    None => to_sql(&t.naive_utc(), &Type::TIMESTAMP, buf)?,
                }
            }
            DataType::Decimal128(_, scale) => {
                let v = a.as_primitive::<Decimal128Type>().value(row);
                let scale = u32::try_from(*scale).map_err(|_| "negative decimal scale")?;
                let d = Decimal::try_from_i128_with_scale(v, scale).map_err(|e| e.to_string())?;
                to_sql(&d, &Type::NUMERIC, buf)?;
            }
            DataType::UInt64 => to_sql(&Decimal::from(a.as_primitive::<UInt64Type>().value(row)), &Type::NUMERIC, buf)?,
            DataType::Interval(IntervalUnit::MonthDayNano) => to_sql(&interval(a, row), &Type::INTERVAL, buf)?,
            // text and json: the binary form is the text itself
            _ if self.pg_type == Type::TEXT || self.pg_type == Type::JSON => self.write_text(row, buf, scratch)?,
            other => return Err(format!("no binary encoding of {other} values as {}", self.pg_type.name())),
        }
        Ok(())
    }
}

/// A column of one of the types most large results are made of, held as its concrete array:
/// its values are written with no per-value type dispatch and no formatter (text and binary
/// are the same bytes for strings; integers print with `itoa`).
enum Plain<'a> {
    Text(&'a GenericStringArray<i32>),
    LargeText(&'a GenericStringArray<i64>),
    TextView(&'a StringViewArray),
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
}

impl<'a> Plain<'a> {
    /// The column as plain values, if it is announced as the type its values are.
    fn of(a: &'a ArrayRef, pg_type: &Type) -> Option<Self> {
        Some(match (a.data_type(), pg_type) {
            (DataType::Utf8, t) if *t == Type::TEXT => Plain::Text(a.as_string()),
            (DataType::LargeUtf8, t) if *t == Type::TEXT => Plain::LargeText(a.as_string()),
            (DataType::Utf8View, t) if *t == Type::TEXT => Plain::TextView(a.as_string_view()),
            (DataType::Int16, t) if *t == Type::INT2 => Plain::Int16(a.as_primitive()),
            (DataType::Int32, t) if *t == Type::INT4 => Plain::Int32(a.as_primitive()),
            (DataType::Int64, t) if *t == Type::INT8 => Plain::Int64(a.as_primitive()),
            _ => return None,
        })
    }

    /// Writes the value at `row` with its length before it (the length is known up front).
    fn write(&self, row: usize, binary: bool, buf: &mut BytesMut) -> Result<(), String> {
        let mut digits = itoa::Buffer::new();
        let bytes = match self {
            Plain::Text(a) => a.value(row).as_bytes(),
            Plain::LargeText(a) => a.value(row).as_bytes(),
            Plain::TextView(a) => a.value(row).as_bytes(),
            // fixed sizes, with their lengths: typed stores, not a copy call per value
            Plain::Int16(a) if binary => {
                buf.put_i32(2);
                buf.put_i16(a.value(row));
                return Ok(());
            }
            Plain::Int32(a) if binary => {
                buf.put_i32(4);
                buf.put_i32(a.value(row));
                return Ok(());
            }
            Plain::Int64(a) if binary => {
                buf.put_i32(8);
                buf.put_i64(a.value(row));
                return Ok(());
            }
            Plain::Int16(a) => digits.format(a.value(row)).as_bytes(),
            Plain::Int32(a) => digits.format(a.value(row)).as_bytes(),
            Plain::Int64(a) => digits.format(a.value(row)).as_bytes(),
        };
        let len = i32::try_from(bytes.len()).map_err(|_| "value too large".to_owned())?;
        buf.put_i32(len);
        buf.put_slice(bytes);
        Ok(())
    }
}

/// Types whose binary form [`Renderer::write_binary`] writes.
fn binary_supported(t: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::BYTEA,
        Type::DATE,
        Type::TIME,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::NUMERIC,
        Type::UUID,
        Type::INTERVAL,
        Type::JSON,
    ]
    .contains(t)
}

/// Writes `value` in PostgreSQL's binary form through postgres-types' encoders.
fn to_sql(value: &impl ToSql, t: &Type, buf: &mut BytesMut) -> Result<(), String> {
    value.to_sql(t, buf).map(|_| ()).map_err(|e| e.to_string())
}

/// Microseconds since the epoch of a timestamp in any unit (nanoseconds are truncated,
/// PostgreSQL keeps microseconds).
fn timestamp_micros(a: &ArrayRef, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row).saturating_mul(1_000_000),
        TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row).saturating_mul(1000),
        TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(row).div_euclid(1000),
    }
}

fn interval(a: &ArrayRef, row: usize) -> Interval {
    let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
    Interval::new(v.months, v.days, v.nanoseconds / 1000)
}

/// `a` with a named time zone relabelled as `+00:00`, for the text formatter; other arrays
/// as they are.
fn utc_offset(a: &ArrayRef) -> Result<ArrayRef, String> {
    match a.data_type() {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != "+00:00" => {
            arrow::compute::cast(a, &DataType::Timestamp(*unit, Some("+00:00".into()))).map_err(|e| e.to_string())
        }
        _ => Ok(a.clone()),
    }
}

/// A UUID's 16 bytes in PostgreSQL's text form (lowercase, hyphenated).
pub fn uuid_text(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    if hex.len() != 32 {
        return hex;
    }
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn binary_value(a: &ArrayRef, row: usize) -> &[u8] {
    match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().value(row),
        DataType::LargeBinary => a.as_binary::<i64>().value(row),
        DataType::BinaryView => a.as_binary_view().value(row),
        DataType::FixedSizeBinary(_) => a.as_fixed_size_binary().value(row),
        _ => &[],
    }
}

/// A nested value as JSON: lists become arrays, structs and maps objects, numbers and booleans
/// stay typed, everything else is its text form.
fn json_value(a: &dyn Array, row: usize) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    if a.is_null(row) {
        return Ok(Value::Null);
    }
    let list = |values: ArrayRef| -> Result<Value, String> {
        (0..values.len()).map(|i| json_value(values.as_ref(), i)).collect::<Result<Vec<_>, _>>().map(Value::Array)
    };
    Ok(match a.data_type() {
        DataType::List(_) => list(a.as_list::<i32>().value(row))?,
        DataType::LargeList(_) => list(a.as_list::<i64>().value(row))?,
        DataType::FixedSizeList(..) => list(a.as_fixed_size_list().value(row))?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut obj = serde_json::Map::new();
            for (i, f) in fields.iter().enumerate() {
                obj.insert(f.name().clone(), json_value(s.column(i).as_ref(), row)?);
            }
            Value::Object(obj)
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let entries = m.value(row);
            let mut obj = serde_json::Map::new();
            for i in 0..entries.len() {
                let key = match json_value(entries.column(0).as_ref(), i)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(key, json_value(entries.column(1).as_ref(), i)?);
            }
            Value::Object(obj)
        }
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => {
            let text = ArrayFormatter::try_new(a, &FORMAT).map_err(|e| e.to_string())?.value(row).to_string();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        _ => Value::String(ArrayFormatter::try_new(a, &FORMAT).map_err(|e| e.to_string())?.value(row).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray};

    use super::*;

    /// Each row's fields as PostgreSQL sends them: `None` for NULL, else the value's bytes.
    fn rows(batch: &RecordBatch, format: FieldFormat) -> Vec<Vec<Option<Vec<u8>>>> {
        let columns: Vec<Column> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| Column { name: f.name().clone(), pg_type: pg_type(LogicalTypeId::Invalid, f.data_type()), format })
            .collect();
        let mut out = Vec::new();
        encode_batch(batch, &columns, |row| {
            assert_eq!(row.field_count as usize, columns.len());
            let (mut data, mut fields) = (&row.data[..], Vec::new());
            for _ in 0..row.field_count {
                let len = i32::from_be_bytes(data[..4].try_into().expect("length"));
                data = &data[4..];
                if len < 0 {
                    fields.push(None);
                } else {
                    fields.push(Some(data[..len as usize].to_vec()));
                    data = &data[len as usize..];
                }
            }
            assert!(data.is_empty(), "bytes after the last field");
            out.push(fields);
        })
        .expect("encode");
        out
    }

    #[test]
    fn integers_and_strings_with_nulls_in_both_formats() {
        let batch = RecordBatch::try_from_iter([
            ("i2", Arc::new(Int16Array::from(vec![Some(-7), None])) as ArrayRef),
            ("i4", Arc::new(Int32Array::from(vec![None, Some(i32::MIN)])) as ArrayRef),
            ("i8", Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(0)])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec![Some("héllo"), None])) as ArrayRef),
            ("l", Arc::new(LargeStringArray::from(vec![Some(""), Some("x")])) as ArrayRef),
            ("v", Arc::new(StringViewArray::from(vec![None, Some("a string longer than twelve bytes")])) as ArrayRef),
        ])
        .expect("batch");
        let some = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(
            rows(&batch, FieldFormat::Text),
            [
                vec![some("-7"), None, some("9223372036854775807"), some("héllo"), some(""), None],
                vec![None, some("-2147483648"), some("0"), None, some("x"), some("a string longer than twelve bytes")],
            ]
        );
        assert_eq!(
            rows(&batch, FieldFormat::Binary),
            [
                vec![
                    Some((-7_i16).to_be_bytes().to_vec()),
                    None,
                    Some(i64::MAX.to_be_bytes().to_vec()),
                    some("héllo"),
                    some(""),
                    None
                ],
                vec![
                    None,
                    Some(i32::MIN.to_be_bytes().to_vec()),
                    Some(0_i64.to_be_bytes().to_vec()),
                    None,
                    some("x"),
                    some("a string longer than twelve bytes")
                ],
            ]
        );
    }

    #[test]
    fn rows_of_a_batch_larger_than_one_buffer_are_whole() {
        let n = 10_000;
        let text: Vec<String> = (0..n).map(|i| format!("row {i} {}", "x".repeat(i % 50))).collect();
        let batch = RecordBatch::try_from_iter([
            ("i", Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef),
            ("s", Arc::new(StringArray::from(text.clone())) as ArrayRef),
        ])
        .expect("batch");
        let got = rows(&batch, FieldFormat::Text);
        assert_eq!(got.len(), n);
        for (i, row) in got.iter().enumerate() {
            assert_eq!(row, &[Some(i.to_string().into_bytes()), Some(text[i].clone().into_bytes())]);
        }
    }
}
