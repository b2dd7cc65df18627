//! DuckDB results (Arrow batches) as PostgreSQL rows: the type each column is announced as,
//! and each value in PostgreSQL's text format (binary for the simple scalar types). Rows are
//! encoded as whole DataRow messages on the session's thread, so the async side only writes
//! bytes.

use arrow::array::{Array, ArrayRef, AsArray, GenericStringArray, PrimitiveArray, RecordBatch, StringViewArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType,
    IntervalUnit, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::{Buf, BufMut, BytesMut};
use chrono::{DateTime, NaiveTime, TimeDelta};
use duckdb::core::LogicalTypeId;
use pg_interval::Interval;
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;
use postgres_types::ToSql;

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
    /// PostgreSQL's `atttypmod`: a `numeric`'s precision and scale, else -1 (none). ADBC and
    /// JDBC clients take a decimal's scale from it.
    pub type_modifier: i32,
}

impl Column {
    /// A result column of DuckDB's `logical` type, which reaches Arrow as `arrow`.
    pub fn of(name: String, logical: LogicalTypeId, arrow: &DataType, format: FieldFormat) -> Column {
        let type_modifier = match arrow {
            DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) if *scale >= 0 => {
                ((i32::from(*precision) << 16) | i32::from(*scale)) + 4
            }
            _ => -1,
        };
        Column { name, pg_type: pg_type(logical, arrow), format, type_modifier }
    }

    /// A text column (of a reply warmlake makes itself).
    pub fn text(name: &str) -> Column {
        Column { name: name.to_owned(), pg_type: Type::TEXT, format: FieldFormat::Text, type_modifier: -1 }
    }

    /// The column as a RowDescription announces it, with PostgreSQL's `typlen` and `atttypmod`.
    pub fn field_info(&self) -> FieldInfo {
        FieldInfo::new(self.name.clone(), None, None, self.pg_type.clone(), self.format)
            .with_type_size(type_size(&self.pg_type))
            .with_type_modifier(self.type_modifier)
    }
}

/// `pg_type.typlen` of the types results carry (-1: variable length).
fn type_size(t: &Type) -> i16 {
    match *t {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL | Type::UUID => 16,
        _ => -1,
    }
}

/// Rows encoded as complete DataRow messages (`D`, the message's length, the field count, each
/// field with its length), back to back: the connection writes them to the socket as they are.
#[derive(Debug)]
pub struct Frames {
    pub bytes: BytesMut,
    pub rows: usize,
}

impl Frames {
    /// The rows as pgwire's `DataRow`s, sharing this buffer: for what pgwire sends itself (a
    /// portal read in parts) and for COPY, which re-encodes each row.
    pub fn into_data_rows(mut self) -> Result<Vec<DataRow>, String> {
        let mut rows = Vec::with_capacity(self.rows);
        while !self.bytes.is_empty() {
            let header = self.bytes.get(..7).ok_or("truncated row header")?;
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let field_count = i16::from_be_bytes([header[5], header[6]]);
            let fields = usize::try_from(len).ok().and_then(|l| l.checked_sub(6)).ok_or("bad row length")?;
            if header[0] != DATA_ROW || self.bytes.len() < 7 + fields {
                return Err("malformed row".to_owned());
            }
            self.bytes.advance(7);
            rows.push(DataRow::new(self.bytes.split_to(fields), field_count));
        }
        Ok(rows)
    }
}

/// The type byte of a DataRow message.
const DATA_ROW: u8 = b'D';

/// Encodes every row of `batch` as DataRow messages, a column at a time: the rows' lengths
/// are summed first, so each column writes its values straight into place — one type dispatch
/// per column, not per value, and no copy of a value besides the one into the message (per
/// row and value dispatch, and building each row apart, were most of the socket's time for
/// large results).
pub fn encode_batch(batch: &RecordBatch, columns: &[Column]) -> Result<Frames, String> {
    let rows = batch.num_rows();
    let field_count = i16::try_from(columns.len()).map_err(|_| "too many columns".to_owned())?;
    let displays: Vec<ArrayRef> = batch.columns().iter().map(utc_offset).collect::<Result<_, _>>()?;
    let mut fields = Vec::with_capacity(columns.len());
    for ((array, display), column) in batch.columns().iter().zip(&displays).zip(columns) {
        fields.push(Field::new(array, display, column)?);
    }
    // each message's length counts itself (4) and the field count (2), not its type byte
    let mut lengths = vec![4 + 2; rows];
    for f in &fields {
        f.add_lengths(&mut lengths);
    }
    let mut bytes = BytesMut::zeroed(lengths.iter().map(|l| 1 + l).sum());
    // where each row's next field goes
    let mut at = Vec::with_capacity(rows);
    let mut start = 0;
    for &len in &lengths {
        // every value's length fits too, being smaller
        let len32 = i32::try_from(len).map_err(|_| "row too large".to_owned())?;
        bytes[start] = DATA_ROW;
        bytes[start + 1..start + 5].copy_from_slice(&len32.to_be_bytes());
        bytes[start + 5..start + 7].copy_from_slice(&field_count.to_be_bytes());
        at.push(start + 7);
        start += 1 + len;
    }
    for f in &fields {
        f.write(&mut bytes, &mut at);
    }
    Ok(Frames { bytes, rows })
}

/// The length PostgreSQL sends for NULL.
const NULL: [u8; 4] = (-1_i32).to_be_bytes();

/// One column of a batch, ready to be written into the rows.
enum Field<'a> {
    /// Values whose encoded length is known from the array: written in place.
    InPlace { values: Plain<'a>, binary: bool, nulls: Option<&'a NullBuffer> },
    /// Values rendered first (each with its length) into one buffer, `ends[row]` where each
    /// ends; copied into the rows.
    Rendered { bytes: BytesMut, ends: Vec<usize> },
}

impl<'a> Field<'a> {
    fn new(array: &'a ArrayRef, display: &'a ArrayRef, column: &Column) -> Result<Self, String> {
        let binary = column.format == FieldFormat::Binary;
        if let Some(values) = Plain::of(array, &column.pg_type) {
            return Ok(Field::InPlace { values, binary, nulls: array.nulls() });
        }
        let renderer = Renderer::new(array, display, column)?;
        let (mut bytes, mut ends, mut scratch) = (BytesMut::new(), Vec::with_capacity(array.len()), String::new());
        for row in 0..array.len() {
            renderer.write(row, &mut bytes, &mut scratch)?;
            ends.push(bytes.len());
        }
        Ok(Field::Rendered { bytes, ends })
    }

    /// Adds each row's field (its length and value) to `lengths`.
    fn add_lengths(&self, lengths: &mut [usize]) {
        match self {
            Field::InPlace { values, binary, nulls } => {
                for (row, len) in lengths.iter_mut().enumerate() {
                    *len += 4 + if nulls.is_some_and(|n| n.is_null(row)) { 0 } else { values.len(row, *binary) };
                }
            }
            Field::Rendered { ends, .. } => {
                let mut start = 0;
                for (len, &end) in lengths.iter_mut().zip(ends) {
                    *len += end - start;
                    start = end;
                }
            }
        }
    }

    /// Writes each row's field at `at[row]` in `out`, moving `at[row]` past it.
    fn write(&self, out: &mut [u8], at: &mut [usize]) {
        match self {
            Field::InPlace { values, binary, nulls } => {
                for (row, p) in at.iter_mut().enumerate() {
                    if nulls.is_some_and(|n| n.is_null(row)) {
                        out[*p..*p + 4].copy_from_slice(&NULL);
                        *p += 4;
                    } else {
                        *p += values.write(row, *binary, &mut out[*p..]);
                    }
                }
            }
            Field::Rendered { bytes, ends } => {
                let mut start = 0;
                for (p, &end) in at.iter_mut().zip(ends) {
                    let len = end - start;
                    out[*p..*p + len].copy_from_slice(&bytes[start..end]);
                    *p += len;
                    start = end;
                }
            }
        }
    }
}

/// Writes one column's values in the wire format asked for.
struct Renderer<'a> {
    array: &'a ArrayRef,
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
        let nullable = array.null_count() > 0 || array.data_type() == &DataType::Null;
        Ok(Self { array, nullable, formatter, pg_type: column.pg_type.clone(), binary })
    }

    /// Writes the value at `row` with its length before it.
    fn write(&self, row: usize, buf: &mut BytesMut, scratch: &mut String) -> Result<(), String> {
        if self.nullable && (self.array.is_null(row) || self.array.data_type() == &DataType::Null) {
            buf.put_slice(&NULL);
            return Ok(());
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
                super::numeric::write(v, scale, buf);
            }
            DataType::UInt64 => {
                let v = i128::from(a.as_primitive::<UInt64Type>().value(row));
                super::numeric::write(v, 0, buf);
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => to_sql(&interval(a, row), &Type::INTERVAL, buf)?,
            // text and json: the binary form is the text itself
            _ if self.pg_type == Type::TEXT || self.pg_type == Type::JSON => self.write_text(row, buf, scratch)?,
            other => return Err(format!("no binary encoding of {other} values as {}", self.pg_type.name())),
        }
        Ok(())
    }
}

/// A column of one of the types most large results are made of, held as its concrete array:
/// the length of each value is known without rendering it, so it is written in place (text
/// and binary are the same bytes for strings; integers print with `itoa`).
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

    /// The length of the (non-NULL) value at `row`, without its length prefix.
    fn len(&self, row: usize, binary: bool) -> usize {
        match self {
            Plain::Text(a) => a.value(row).len(),
            Plain::LargeText(a) => a.value(row).len(),
            Plain::TextView(a) => a.value(row).len(),
            Plain::Int16(_) if binary => 2,
            Plain::Int32(_) if binary => 4,
            Plain::Int64(_) if binary => 8,
            Plain::Int16(a) => decimal_len(i64::from(a.value(row))),
            Plain::Int32(a) => decimal_len(i64::from(a.value(row))),
            Plain::Int64(a) => decimal_len(a.value(row)),
        }
    }

    /// Writes the value at `row` with its length before it at the start of `out` (which has
    /// room: [`Plain::len`] sized it); returns the bytes written.
    fn write(&self, row: usize, binary: bool, out: &mut [u8]) -> usize {
        let mut digits = itoa::Buffer::new();
        let value: &[u8] = match self {
            Plain::Text(a) => a.value(row).as_bytes(),
            Plain::LargeText(a) => a.value(row).as_bytes(),
            Plain::TextView(a) => a.value(row).as_bytes(),
            Plain::Int16(a) if binary => &a.value(row).to_be_bytes(),
            Plain::Int32(a) if binary => &a.value(row).to_be_bytes(),
            Plain::Int64(a) if binary => &a.value(row).to_be_bytes(),
            Plain::Int16(a) => digits.format(a.value(row)).as_bytes(),
            Plain::Int32(a) => digits.format(a.value(row)).as_bytes(),
            Plain::Int64(a) => digits.format(a.value(row)).as_bytes(),
        };
        // the row's length was checked to fit an i32, and the value is part of it
        let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        out[..4].copy_from_slice(&len.to_be_bytes());
        out[4..4 + value.len()].copy_from_slice(value);
        4 + value.len()
    }
}

/// How many characters `v` prints as in decimal (as `itoa` prints it).
fn decimal_len(v: i64) -> usize {
    let digits = v.unsigned_abs().checked_ilog10().map_or(1, |l| l as usize + 1);
    digits + usize::from(v < 0)
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
            .map(|f| Column::of(f.name().clone(), LogicalTypeId::Invalid, f.data_type(), format))
            .collect();
        let frames = encode_batch(batch, &columns).expect("encode");
        assert_eq!(frames.rows, batch.num_rows());
        let mut out = Vec::new();
        for row in frames.into_data_rows().expect("whole messages") {
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
        }
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

    #[test]
    fn decimal_lengths_are_what_itoa_prints() {
        let mut edges = vec![0, -1, 9, -9, 10, -10, 99, 100, i64::MAX, i64::MIN, i64::MIN + 1];
        for p in 1..19 {
            let ten = 10_i64.pow(p);
            edges.extend([ten - 1, ten, ten + 1, -ten + 1, -ten, -ten - 1]);
        }
        for v in edges {
            assert_eq!(decimal_len(v), itoa::Buffer::new().format(v).len(), "{v}");
        }
    }

    #[test]
    fn rendered_columns_sit_between_in_place_ones() {
        let batch = RecordBatch::try_from_iter([
            ("s", Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])) as ArrayRef),
            ("f", Arc::new(arrow::array::Float64Array::from(vec![Some(1.5), Some(f64::INFINITY), None])) as ArrayRef),
            ("b", Arc::new(arrow::array::BooleanArray::from(vec![None, Some(true), Some(false)])) as ArrayRef),
            ("i", Arc::new(Int32Array::from(vec![Some(-12), Some(0), None])) as ArrayRef),
        ])
        .expect("batch");
        let some = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(
            rows(&batch, FieldFormat::Text),
            [
                vec![some("a"), some("1.5"), None, some("-12")],
                vec![None, some("Infinity"), some("t"), some("0")],
                vec![some("ccc"), None, some("f"), None],
            ]
        );
        assert_eq!(
            rows(&batch, FieldFormat::Binary)[1],
            [None, Some(f64::INFINITY.to_be_bytes().to_vec()), Some(vec![1]), Some(0_i32.to_be_bytes().to_vec())]
        );
    }

    #[test]
    fn an_empty_batch_is_no_messages_and_a_text_row_is_one() {
        let batch = RecordBatch::try_from_iter([("i", Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef)])
            .expect("batch");
        assert!(rows(&batch, FieldFormat::Binary).is_empty());
        let text = RecordBatch::try_from_iter([
            ("a", Arc::new(StringArray::from(vec!["on"])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec![""])) as ArrayRef),
        ])
        .expect("batch");
        let column = Column::text;
        let frames = encode_batch(&text, &[column("a"), column("b")]).expect("row");
        assert_eq!(&frames.bytes[..], b"D\0\0\0\x10\0\x02\0\0\0\x02on\0\0\0\0");
        let rows = frames.into_data_rows().expect("rows");
        assert_eq!((rows.len(), rows[0].field_count), (1, 2));
    }
}
