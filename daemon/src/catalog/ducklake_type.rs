//! DuckLake's type names (`int64`, `decimal(12,2)`, `struct`, ...) as DuckDB SQL types.

/// A column type the reader cannot express in DuckDB SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("unknown DuckLake type {0:?}")]
    Unknown(String),
    #[error("{kind} column {name:?} has {found} children, expected {expected}")]
    Children { kind: &'static str, name: String, found: usize, expected: &'static str },
}

/// The DuckDB type for a primitive DuckLake type name, or `None` for nested kinds.
pub fn primitive(name: &str) -> Result<Option<String>, TypeError> {
    let lower = name.trim().to_ascii_lowercase();
    let ty = match lower.as_str() {
        "struct" | "list" | "map" => return Ok(None),
        "boolean" => "BOOLEAN",
        "int8" => "TINYINT",
        "int16" => "SMALLINT",
        "int32" => "INTEGER",
        "int64" => "BIGINT",
        "int128" => "HUGEINT",
        "uint8" => "UTINYINT",
        "uint16" => "USMALLINT",
        "uint32" => "UINTEGER",
        "uint64" => "UBIGINT",
        "uint128" => "UHUGEINT",
        "float32" => "FLOAT",
        "float64" => "DOUBLE",
        "varchar" => "VARCHAR",
        "blob" => "BLOB",
        "uuid" => "UUID",
        "json" => "JSON",
        "date" => "DATE",
        "time" => "TIME",
        "timetz" => "TIMETZ",
        "timestamp" => "TIMESTAMP",
        "timestamptz" => "TIMESTAMPTZ",
        "timestamp_s" => "TIMESTAMP_S",
        "timestamp_ms" => "TIMESTAMP_MS",
        "timestamp_ns" => "TIMESTAMP_NS",
        "interval" => "INTERVAL",
        "variant" => "VARIANT",
        "geometry" => "GEOMETRY",
        other => {
            if let Some(args) = other.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
                let ok = args.split(',').all(|p| p.trim().parse::<u8>().is_ok()) && args.split(',').count() == 2;
                if ok {
                    return Ok(Some(format!("DECIMAL({})", args.replace(' ', ""))));
                }
            }
            return Err(TypeError::Unknown(name.to_string()));
        }
    };
    Ok(Some(ty.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_fixture_type() {
        assert_eq!(primitive("int64"), Ok(Some("BIGINT".into())));
        assert_eq!(primitive("decimal(12,2)"), Ok(Some("DECIMAL(12,2)".into())));
        assert_eq!(primitive("timestamptz"), Ok(Some("TIMESTAMPTZ".into())));
        assert_eq!(primitive("list"), Ok(None));
        assert!(primitive("decimal(1;drop table x)").is_err());
        assert!(primitive("nonsense").is_err());
    }
}
