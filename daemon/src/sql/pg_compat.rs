//! What DuckDB's `pg_catalog` emulation lacks for the catalog queries psql and drivers send,
//! bridged by rewriting those queries (only queries naming `pg_catalog` are touched) onto
//! macros the engine defines. DuckDB refuses new entries in its `pg_catalog` schema, so the
//! missing columns, relations and function overloads live in `main` as `warmlake_<name>`
//! macros, and `pg_catalog.<name>` is renamed to them outside string literals. Lake tables
//! are DuckDB views, so psql's `\dt` is widened to list views too.

use super::statement::skip_quoted;

/// Macros the engine creates before locking its configuration: `version()`; for the
/// relations in [`RELATIONS`], table macros with the columns psql's `\d` and JDBC's metadata
/// read; for the functions in [`FUNCTIONS`], overloads DuckDB lacks. Column types are the
/// PostgreSQL OIDs the socket announces for result columns (`text`, `bigint`, nested values
/// `json`; DuckDB's own `pg_attribute` gives its internal type ids), with PostgreSQL's numeric
/// type modifier, and `format_type` spells them as PostgreSQL does.
const MACROS: &str = "
CREATE MACRO version() AS 'PostgreSQL 16.0 (warmlake ' || '{warmlake}' || ', DuckDB '
    || (SELECT library_version FROM pragma_version()) || ')';
CREATE MACRO warmlake_pg_get_userbyid(id) AS current_user;
CREATE MACRO warmlake_pg_get_serial_sequence(table_name, column_name) AS NULL::VARCHAR;
CREATE MACRO warmlake_current_setting(setting_name) AS coalesce(
    (SELECT max(v) FROM (VALUES {defaults}) d(k, v) WHERE k = lower(setting_name)),
    (SELECT max(value) FROM duckdb_settings() WHERE name = setting_name));
CREATE MACRO warmlake_pg_get_indexdef(index_oid) AS NULL::VARCHAR,
    (index_oid, column_no, pretty) AS NULL::VARCHAR;
CREATE MACRO json_build_object(k1, v1) AS json_object(k1::VARCHAR, v1),
    (k1, v1, k2, v2) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2),
    (k1, v1, k2, v2, k3, v3) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3),
    (k1, v1, k2, v2, k3, v3, k4, v4) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3, k4::VARCHAR, v4),
    (k1, v1, k2, v2, k3, v3, k4, v4, k5, v5) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3, k4::VARCHAR, v4, k5::VARCHAR, v5),
    (k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3, k4::VARCHAR, v4, k5::VARCHAR, v5, k6::VARCHAR, v6),
    (k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6, k7, v7) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3, k4::VARCHAR, v4, k5::VARCHAR, v5, k6::VARCHAR, v6, k7::VARCHAR, v7),
    (k1, v1, k2, v2, k3, v3, k4, v4, k5, v5, k6, v6, k7, v7, k8, v8) AS json_object(k1::VARCHAR, v1, k2::VARCHAR, v2, k3::VARCHAR, v3, k4::VARCHAR, v4, k5::VARCHAR, v5, k6::VARCHAR, v6, k7::VARCHAR, v7, k8::VARCHAR, v8);
CREATE MACRO warmlake_pg_collation() AS TABLE
    SELECT *, (SELECT oid FROM system.pg_catalog.pg_namespace WHERE nspname = 'pg_catalog') AS collnamespace
    FROM system.pg_catalog.pg_collation;
CREATE MACRO warmlake_pg_get_expr(expr, rel) AS expr, (expr, rel, pretty) AS expr;
CREATE MACRO warmlake_pg_oid(data_type) AS CASE
    WHEN data_type LIKE '%[]' OR data_type LIKE '%]' OR data_type LIKE 'STRUCT%' OR data_type LIKE 'MAP%'
        OR data_type LIKE 'UNION%' THEN 114
    WHEN data_type = 'BOOLEAN' THEN 16
    WHEN data_type IN ('TINYINT', 'SMALLINT', 'UTINYINT') THEN 21
    WHEN data_type IN ('INTEGER', 'USMALLINT') THEN 23
    WHEN data_type IN ('BIGINT', 'UINTEGER') THEN 20
    WHEN data_type IN ('UBIGINT', 'HUGEINT', 'UHUGEINT') OR data_type LIKE 'DECIMAL%' THEN 1700
    WHEN data_type = 'FLOAT' THEN 700
    WHEN data_type = 'DOUBLE' THEN 701
    WHEN data_type = 'BLOB' THEN 17
    WHEN data_type = 'DATE' THEN 1082
    WHEN data_type = 'TIME' THEN 1083
    WHEN data_type = 'TIMESTAMP WITH TIME ZONE' THEN 1184
    WHEN data_type LIKE 'TIMESTAMP%' THEN 1114
    WHEN data_type = 'INTERVAL' THEN 1186
    WHEN data_type = 'UUID' THEN 2950
    ELSE 25 END;
CREATE MACRO warmlake_pg_attribute() AS TABLE
    SELECT a.* REPLACE (
        warmlake_pg_oid(c.data_type) AS atttypid,
        CASE WHEN c.data_type LIKE 'DECIMAL%' THEN ((c.numeric_precision << 16) | c.numeric_scale) + 4 ELSE -1 END
            AS atttypmod)
    FROM system.pg_catalog.pg_attribute a
    JOIN duckdb_columns() c ON a.attrelid = c.table_oid AND a.attnum = c.column_index;
CREATE MACRO warmlake_pg_type() AS TABLE
    WITH base(oid, typname, typlen, typbyval, typcategory, typispreferred, typarray, typinput, typoutput,
              typreceive, typsend, typmodin, typmodout, typalign, typstorage, typcollation) AS (VALUES
        (16, 'bool', 1, true, 'B', true, 1000, 'boolin', 'boolout', 'boolrecv', 'boolsend', '-', '-', 'c', 'p', 0),
        (17, 'bytea', -1, false, 'U', false, 1001, 'byteain', 'byteaout', 'bytearecv', 'byteasend', '-', '-', 'i', 'x', 0),
        (18, 'char', 1, true, 'Z', false, 1002, 'charin', 'charout', 'charrecv', 'charsend', '-', '-', 'c', 'p', 0),
        (19, 'name', 64, false, 'S', false, 1003, 'namein', 'nameout', 'namerecv', 'namesend', '-', '-', 'c', 'p', 950),
        (20, 'int8', 8, true, 'N', false, 1016, 'int8in', 'int8out', 'int8recv', 'int8send', '-', '-', 'd', 'p', 0),
        (21, 'int2', 2, true, 'N', false, 1005, 'int2in', 'int2out', 'int2recv', 'int2send', '-', '-', 's', 'p', 0),
        (23, 'int4', 4, true, 'N', false, 1007, 'int4in', 'int4out', 'int4recv', 'int4send', '-', '-', 'i', 'p', 0),
        (25, 'text', -1, false, 'S', true, 1009, 'textin', 'textout', 'textrecv', 'textsend', '-', '-', 'i', 'x', 100),
        (26, 'oid', 4, true, 'N', false, 1028, 'oidin', 'oidout', 'oidrecv', 'oidsend', '-', '-', 'i', 'p', 0),
        (114, 'json', -1, false, 'U', false, 199, 'json_in', 'json_out', 'json_recv', 'json_send', '-', '-', 'i', 'x', 0),
        (700, 'float4', 4, true, 'N', false, 1021, 'float4in', 'float4out', 'float4recv', 'float4send', '-', '-', 'i', 'p', 0),
        (701, 'float8', 8, true, 'N', true, 1022, 'float8in', 'float8out', 'float8recv', 'float8send', '-', '-', 'd', 'p', 0),
        (705, 'unknown', -2, false, 'X', false, 0, 'unknownin', 'unknownout', 'unknownrecv', 'unknownsend', '-', '-', 'c', 'p', 0),
        (1042, 'bpchar', -1, false, 'S', false, 1014, 'bpcharin', 'bpcharout', 'bpcharrecv', 'bpcharsend',
            'bpchartypmodin', 'bpchartypmodout', 'i', 'x', 100),
        (1043, 'varchar', -1, false, 'S', false, 1015, 'varcharin', 'varcharout', 'varcharrecv', 'varcharsend',
            'varchartypmodin', 'varchartypmodout', 'i', 'x', 100),
        (1082, 'date', 4, true, 'D', false, 1182, 'date_in', 'date_out', 'date_recv', 'date_send', '-', '-', 'i', 'p', 0),
        (1083, 'time', 8, true, 'D', false, 1183, 'time_in', 'time_out', 'time_recv', 'time_send',
            'timetypmodin', 'timetypmodout', 'd', 'p', 0),
        (1114, 'timestamp', 8, true, 'D', false, 1115, 'timestamp_in', 'timestamp_out', 'timestamp_recv',
            'timestamp_send', 'timestamptypmodin', 'timestamptypmodout', 'd', 'p', 0),
        (1184, 'timestamptz', 8, true, 'D', true, 1185, 'timestamptz_in', 'timestamptz_out', 'timestamptz_recv',
            'timestamptz_send', 'timestamptztypmodin', 'timestamptztypmodout', 'd', 'p', 0),
        (1186, 'interval', 16, false, 'T', true, 1187, 'interval_in', 'interval_out', 'interval_recv', 'interval_send',
            'intervaltypmodin', 'intervaltypmodout', 'd', 'p', 0),
        (1266, 'timetz', 12, false, 'D', false, 1270, 'timetz_in', 'timetz_out', 'timetz_recv', 'timetz_send',
            'timetztypmodin', 'timetztypmodout', 'd', 'p', 0),
        (1560, 'bit', -1, false, 'V', false, 1561, 'bit_in', 'bit_out', 'bit_recv', 'bit_send',
            'bittypmodin', 'bittypmodout', 'i', 'x', 0),
        (1700, 'numeric', -1, false, 'N', false, 1231, 'numeric_in', 'numeric_out', 'numeric_recv', 'numeric_send',
            'numerictypmodin', 'numerictypmodout', 'i', 'm', 0),
        (2950, 'uuid', 16, false, 'U', false, 2951, 'uuid_in', 'uuid_out', 'uuid_recv', 'uuid_send', '-', '-', 'c', 'p', 0),
        (3802, 'jsonb', -1, false, 'U', false, 3807, 'jsonb_in', 'jsonb_out', 'jsonb_recv', 'jsonb_send', '-', '-', 'i', 'x', 0)
    ),
    types AS (
        SELECT oid, typname, typlen, typbyval, 'b' AS typtype, typcategory, typispreferred, '-' AS typsubscript,
            0 AS typelem, typarray, typinput, typoutput, typreceive, typsend, typmodin, typmodout, typalign,
            typstorage, typcollation
        FROM base
        UNION ALL
        SELECT typarray, '_' || typname, -1, false, 'b', 'A', false, 'array_subscript_handler', oid, 0, 'array_in',
            'array_out', 'array_recv', 'array_send', typmodin, typmodout, CASE typalign WHEN 'd' THEN 'd' ELSE 'i' END,
            'x', typcollation
        FROM base WHERE typarray <> 0
    )
    SELECT oid::BIGINT AS oid, typname,
        (SELECT oid FROM system.pg_catalog.pg_namespace WHERE nspname = 'pg_catalog') AS typnamespace,
        10 AS typowner, typlen::SMALLINT AS typlen, typbyval, typtype, typcategory, typispreferred,
        true AS typisdefined, ',' AS typdelim, 0::BIGINT AS typrelid, typsubscript, typelem::BIGINT AS typelem,
        typarray::BIGINT AS typarray, typinput, typoutput, typreceive, typsend, typmodin, typmodout,
        '-' AS typanalyze, typalign, typstorage, false AS typnotnull, 0::BIGINT AS typbasetype,
        -1 AS typtypmod, 0 AS typndims, typcollation::BIGINT AS typcollation, NULL::VARCHAR AS typdefaultbin,
        NULL::VARCHAR AS typdefault, NULL::VARCHAR AS typacl
    FROM types;
CREATE MACRO to_regtype(regtype_text) AS
    (SELECT max(oid) FROM warmlake_pg_type() WHERE typname = lower(string_split(regtype_text, '.')[-1]));
CREATE MACRO warmlake_format_type(type_oid, typemod) AS CASE type_oid
    WHEN 16 THEN 'boolean' WHEN 17 THEN 'bytea' WHEN 20 THEN 'bigint' WHEN 21 THEN 'smallint'
    WHEN 23 THEN 'integer' WHEN 25 THEN 'text' WHEN 114 THEN 'json' WHEN 700 THEN 'real'
    WHEN 701 THEN 'double precision' WHEN 1043 THEN 'character varying' WHEN 1082 THEN 'date'
    WHEN 1083 THEN 'time without time zone' WHEN 1114 THEN 'timestamp without time zone'
    WHEN 1184 THEN 'timestamp with time zone' WHEN 1186 THEN 'interval' WHEN 2950 THEN 'uuid'
    WHEN 1700 THEN CASE WHEN typemod >= 4
        THEN 'numeric(' || ((typemod - 4) >> 16) || ',' || ((typemod - 4) & 65535) || ')' ELSE 'numeric' END
    ELSE system.pg_catalog.format_type(type_oid, typemod) END;
CREATE MACRO warmlake_pg_class() AS TABLE
    SELECT * REPLACE (NULL::VARCHAR[] AS reloptions), false AS relforcerowsecurity FROM system.pg_catalog.pg_class;
CREATE MACRO warmlake_pg_get_viewdef(view_oid) AS system.pg_catalog.pg_get_viewdef(view_oid),
    (view_oid, pretty) AS system.pg_catalog.pg_get_viewdef(view_oid);
CREATE MACRO warmlake_pg_encoding_to_char(encoding) AS CASE encoding WHEN 6 THEN 'UTF8' ELSE 'SQL_ASCII' END;
CREATE MACRO warmlake_pg_database() AS TABLE
    SELECT *, 10::BIGINT AS datdba, 6 AS encoding, 'C' AS datcollate, 'C' AS datctype, NULL::VARCHAR AS daticulocale,
        'c' AS datlocprovider, NULL::VARCHAR[] AS datacl
    FROM system.pg_catalog.pg_database WHERE datname = current_database();
CREATE MACRO warmlake_pg_policy() AS TABLE
    SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS polname, NULL::BIGINT AS polrelid, NULL::VARCHAR AS polcmd,
        NULL::BOOLEAN AS polpermissive, NULL::BIGINT[] AS polroles, NULL::VARCHAR AS polqual,
        NULL::VARCHAR AS polwithcheck
    WHERE false;
CREATE MACRO warmlake_pg_index() AS TABLE
    SELECT *, false AS indnullsnotdistinct FROM system.pg_catalog.pg_index;
CREATE MACRO warmlake_pg_opclass() AS TABLE
    SELECT NULL::BIGINT AS oid, NULL::VARCHAR AS opcname, NULL::BIGINT AS opcnamespace, NULL::BOOLEAN AS opcdefault
    WHERE false;
CREATE MACRO warmlake_pg_inherits() AS TABLE
    SELECT NULL::BIGINT AS inhrelid, NULL::BIGINT AS inhparent, NULL::INTEGER AS inhseqno,
        NULL::BOOLEAN AS inhdetachpending
    WHERE false;
";

/// `pg_catalog` relations served by `warmlake_<name>()` table macros.
const RELATIONS: &[&str] = &[
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_policy",
    "pg_inherits",
    "pg_collation",
    "pg_index",
    "pg_opclass",
];

/// `pg_catalog` functions served by `warmlake_<name>` macros.
const FUNCTIONS: &[&str] = &[
    "pg_get_userbyid",
    "pg_get_expr",
    "format_type",
    "pg_encoding_to_char",
    "pg_get_viewdef",
    "pg_get_serial_sequence",
    "pg_get_indexdef",
];

/// PostgreSQL casts to catalog types DuckDB lacks, and what DuckDB casts to instead: object
/// identifiers print as numbers. Both spellings are rewritten: `x::regclass` and
/// `CAST(x AS REGCLASS)` (SQLAlchemy's).
const CASTS: &[(&str, &str)] = &[
    ("regtype", "VARCHAR"),
    ("regclass", "VARCHAR"),
    ("regproc", "VARCHAR"),
    ("oid", "BIGINT"),
    ("text", "VARCHAR"),
    ("int2", "SMALLINT"),
    ("int4", "INTEGER"),
    ("int8", "BIGINT"),
];

/// The macros with this build's version filled in.
pub fn macros() -> String {
    let defaults: Vec<String> = super::settings::DEFAULTS
        .iter()
        .map(|(k, v)| format!("({}, {})", crate::view_sql::literal(k), crate::view_sql::literal(v)))
        .collect();
    MACROS.replace("{warmlake}", env!("CARGO_PKG_VERSION")).replace("{defaults}", &defaults.join(", "))
}

/// Rewrites a catalog query (one naming `pg_catalog`, casting to a `reg*` type, as psycopg's
/// type lookup does, or asking `current_setting()`) into something DuckDB runs; other queries
/// are returned as is.
pub fn rewrite(sql: &str) -> String {
    if !sql.contains("pg_catalog") && !sql.contains("::reg") && !sql.contains("current_setting(") {
        return sql.to_owned();
    }
    let mut out = rename_catalog_names(sql);
    // OPERATOR(pg_catalog.~) is PostgreSQL's schema-qualified operator syntax
    for op in ["!~~*", "!~~", "~~*", "~~", "!~*", "!~", "~*", "~", "=", "<>"] {
        out = out.replace(&format!("OPERATOR(pg_catalog.{op})"), op);
    }
    out = out.replace(" COLLATE pg_catalog.default", "");
    out = zero_regprocs(&out);
    // psql's \dt: lake tables are views
    out = out.replace("c.relkind IN ('r','p','')", "c.relkind IN ('r','p','v','')");
    // DuckDB's fails on PostgreSQL's settings (SQLAlchemy asks for default_table_access_method)
    out = out.replace("current_setting(", "warmlake_current_setting(");
    out
}

/// Renames `pg_catalog.<name>` outside quotes: relations and functions to their macros,
/// other functions to their unqualified names. Casts to catalog types (`::pg_catalog.regtype`,
/// `::regclass`, `CAST(x AS REGCLASS)`) become DuckDB types, and `'name'::regclass` the
/// relation's oid.
fn rename_catalog_names(sql: &str) -> String {
    const PREFIX: &str = "pg_catalog.";
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 64);
    let mut copied = 0;
    // the last string literal, while nothing but a cast may follow it
    let mut literal: Option<(usize, usize)> = None;
    // for each open parenthesis, whether it opened a CAST
    let mut parens: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => {
                let before = sql[..i].trim_end();
                let word_at = before.len() - before.bytes().rev().take_while(|b| is_ident(*b)).count();
                parens.push(before[word_at..].eq_ignore_ascii_case("cast"));
                i += 1;
            }
            b')' => {
                parens.pop();
                i += 1;
            }
            b'a' | b'A'
                if parens.last() == Some(&true)
                    && (i == 0 || !is_ident(bytes[i - 1]))
                    && bytes[i..].get(..2).is_some_and(|w| w.eq_ignore_ascii_case(b"as"))
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_whitespace) =>
            {
                // CAST(x AS <type>): the type
                let start = i + 2 + bytes[i + 2..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                let end = start + bytes[start..].iter().take_while(|b| is_ident(**b)).count();
                let name = sql[start..end].to_ascii_lowercase();
                if let Some((_, duck)) = CASTS.iter().find(|(pg, _)| *pg == name) {
                    out.push_str(&sql[copied..start]);
                    out.push_str(duck);
                    copied = end;
                }
                i = end;
            }
            b'\'' | b'"' => {
                let end = skip_quoted(bytes, i);
                literal = (bytes[i] == b'\'').then_some((i, end));
                i = end;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => {
                let mut start = i + 2;
                start += sql[start..].len() - sql[start..].trim_start().len();
                if sql[start..].starts_with(PREFIX) {
                    start += PREFIX.len();
                }
                let end = start + sql[start..].bytes().take_while(|b| is_ident(*b)).count();
                let name = &sql[start..end];
                let casted = literal.filter(|(_, e)| *e == i);
                if let (Some((from, to)), "regclass") = (casted, name) {
                    // PostgreSQL resolves the name; DuckDB's pg_class has no catalog relations
                    let relation = sql[from + 1..to - 1].rsplit('.').next().unwrap_or_default();
                    out.push_str(&sql[copied..from]);
                    out.push_str(&format!(
                        "(SELECT max(oid) FROM system.pg_catalog.pg_class WHERE relname = '{relation}')"
                    ));
                    copied = end;
                } else if let Some((_, duck)) = CASTS.iter().find(|(pg, _)| *pg == name) {
                    out.push_str(&sql[copied..i]);
                    out.push_str("::");
                    out.push_str(duck);
                    copied = end;
                }
                i = end.max(i + 2);
            }
            b'p' if sql[i..].starts_with(PREFIX) && (i == 0 || !is_ident(bytes[i - 1])) => {
                let start = i + PREFIX.len();
                let end = start + sql[start..].bytes().take_while(|b| is_ident(*b)).count();
                let name = &sql[start..end];
                let replacement = if RELATIONS.contains(&name) {
                    Some(relation(name, &sql[end..]))
                } else if FUNCTIONS.contains(&name) {
                    Some(format!("warmlake_{name}"))
                } else if sql[end..].trim_start().starts_with('(') {
                    // DuckDB finds its functions unqualified, but not those outside its
                    // pg_catalog (array_to_string ...) when qualified
                    Some(name.to_owned())
                } else {
                    None
                };
                if let Some(r) = replacement {
                    out.push_str(&sql[copied..i]);
                    out.push_str(&r);
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// `pg_type`'s function columns (PostgreSQL's `regproc`), which warmlake_pg_type() holds as the
/// functions' names.
const REGPROC_COLUMNS: &[&str] =
    &["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze", "typsubscript"];

/// `typreceive != 0` and the like (ADBC's type lookup, `typsend = 0`): a `regproc` that is zero
/// prints as `-`, which is what the names-as-text columns hold for it.
fn zero_regprocs(sql: &str) -> String {
    let mut out = sql.to_owned();
    for column in REGPROC_COLUMNS {
        let mut from = 0;
        while let Some(found) = out[from..].find(column) {
            let at = from + found;
            let end = at + column.len();
            from = end;
            if at > 0 && is_ident(out.as_bytes()[at - 1]) || out.as_bytes().get(end).is_some_and(|b| is_ident(*b)) {
                continue;
            }
            let rest = &out[end..];
            let after_ws = rest.trim_start();
            let Some(op) = ["<>", "!=", "="].into_iter().find(|op| after_ws.starts_with(op)) else { continue };
            let value = after_ws[op.len()..].trim_start();
            if !value.starts_with('0') || value.as_bytes().get(1).is_some_and(|b| is_ident(*b) || *b == b'.') {
                continue;
            }
            let zero_at = out.len() - value.len();
            out.replace_range(zero_at..zero_at + 1, "'-'");
            from = zero_at + 3;
        }
    }
    out
}

/// A `pg_catalog` relation served by a table macro, followed by `rest`: as a qualifier of a
/// column (`pg_catalog.pg_class.relname`, as SQLAlchemy writes them) the relation's name; else
/// the macro's call, named after the relation unless the query names it (DuckDB would name it
/// `unnamed_query<n>`).
fn relation(name: &str, rest: &str) -> String {
    if rest.starts_with('.') {
        return name.to_owned();
    }
    let next = rest.trim_start();
    let word: String = next.bytes().take_while(|b| is_ident(*b)).map(|b| b.to_ascii_uppercase() as char).collect();
    const NOT_ALIASES: &[&str] = &[
        "",
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "FULL",
        "CROSS",
        "NATURAL",
        "ON",
        "USING",
        "WHERE",
        "GROUP",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "HAVING",
        "WINDOW",
        "QUALIFY",
        "FETCH",
        "FOR",
    ];
    let named = next.starts_with('"') || !NOT_ALIASES.contains(&word.as_str());
    if named { format!("warmlake_{name}()") } else { format!("warmlake_{name}() AS {name}") }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_regprocs_compare_with_the_dash_they_print_as() {
        assert_eq!(
            rewrite(
                "SELECT oid FROM pg_catalog.pg_type WHERE (typreceive != 0 OR typsend<>0) AND typreceive::TEXT != 'array_recv'"
            ),
            "SELECT oid FROM warmlake_pg_type() AS pg_type WHERE (typreceive != '-' OR typsend<>'-') AND \
             typreceive::TEXT != 'array_recv'"
        );
        assert_eq!(
            zero_regprocs("WHERE typreceive = 0.5 OR mytypsend = 0 OR typsend = 01"),
            "WHERE typreceive = 0.5 OR mytypsend = 0 OR typsend = 01"
        );
    }

    #[test]
    fn rewrites_only_catalog_queries() {
        assert_eq!(rewrite("SELECT '~' AS x"), "SELECT '~' AS x");
        let q = "SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default";
        assert_eq!(rewrite(q), "SELECT 1 FROM warmlake_pg_class() c WHERE c.relname ~ '^(x)$'");
    }

    #[test]
    fn relations_keep_their_names_when_the_query_gives_none() {
        let q = "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace \
                 ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace";
        assert_eq!(
            rewrite(q),
            "SELECT pg_class.relname FROM warmlake_pg_class() AS pg_class JOIN pg_catalog.pg_namespace \
             ON pg_catalog.pg_namespace.oid = pg_class.relnamespace"
        );
        assert_eq!(rewrite("SELECT 1 FROM pg_catalog.pg_type"), "SELECT 1 FROM warmlake_pg_type() AS pg_type");
        assert_eq!(rewrite("SELECT 1 FROM pg_catalog.pg_type AS t"), "SELECT 1 FROM warmlake_pg_type() AS t");
        assert_eq!(rewrite("FROM pg_catalog.pg_type, x"), "FROM warmlake_pg_type() AS pg_type, x");
    }

    #[test]
    fn casts_to_catalog_types_in_either_spelling() {
        let q = "SELECT CAST(CAST(pg_catalog.pg_attribute.attrelid AS REGCLASS) AS TEXT), \
                 cast(x as oid), (SELECT 1 AS oid), 'CAST(y AS REGTYPE)' FROM pg_catalog.pg_attribute";
        assert_eq!(
            rewrite(q),
            "SELECT CAST(CAST(pg_attribute.attrelid AS VARCHAR) AS VARCHAR), \
             cast(x as BIGINT), (SELECT 1 AS oid), 'CAST(y AS REGTYPE)' FROM warmlake_pg_attribute() AS pg_attribute"
        );
    }

    #[test]
    fn settings_and_index_definitions_go_to_their_macros() {
        let q =
            "SELECT current_setting($1), pg_catalog.pg_get_indexdef(i.indexrelid, 1, true) FROM pg_catalog.pg_index i";
        assert_eq!(
            rewrite(q),
            "SELECT warmlake_current_setting($1), warmlake_pg_get_indexdef(i.indexrelid, 1, true) FROM warmlake_pg_index() i"
        );
        // without a catalog name in the query too (a driver asking the server's version)
        assert_eq!(
            rewrite("SELECT current_setting('server_version_num')"),
            "SELECT warmlake_current_setting('server_version_num')"
        );
    }

    #[test]
    fn regclass_literals_become_oids() {
        let q = "SELECT 1 FROM pg_catalog.pg_description d WHERE d.classoid = 'pg_catalog.pg_class'::regclass \
                 AND d.objoid = c.oid::regclass";
        assert_eq!(
            rewrite(q),
            "SELECT 1 FROM pg_catalog.pg_description d WHERE d.classoid = \
             (SELECT max(oid) FROM system.pg_catalog.pg_class WHERE relname = 'pg_class') AND d.objoid = c.oid::VARCHAR"
        );
    }

    #[test]
    fn renames_outside_quotes_only() {
        let q = "SELECT c.reloftype::pg_catalog.regtype::pg_catalog.text, 'pg_catalog.pg_class', \
                 pg_catalog.pg_get_expr(d.adbin, d.adrelid, true), pg_catalog.array_to_string(x, ',') \
                 FROM pg_catalog.pg_attrdef d, xpg_catalog.pg_class";
        assert_eq!(
            rewrite(q),
            "SELECT c.reloftype::VARCHAR::VARCHAR, 'pg_catalog.pg_class', \
             warmlake_pg_get_expr(d.adbin, d.adrelid, true), array_to_string(x, ',') \
             FROM pg_catalog.pg_attrdef d, xpg_catalog.pg_class"
        );
    }
}
