//! What DuckDB's `pg_catalog` emulation lacks for the catalog queries psql and drivers send,
//! bridged by rewriting those queries (only queries naming `pg_catalog` are touched) and by
//! a few macros the engine defines. Lake tables are DuckDB views, so psql's `\dt` is widened
//! to list views too.

/// Macros the engine creates before locking its configuration.
pub const MACROS: &str = "
CREATE MACRO version() AS 'PostgreSQL 16.0 (warmlake ' || '{warmlake}' || ', DuckDB '
    || (SELECT library_version FROM pragma_version()) || ')';
CREATE MACRO pg_get_userbyid(id) AS current_user;
";

/// The macros with this build's version filled in.
pub fn macros() -> String {
    MACROS.replace("{warmlake}", env!("CARGO_PKG_VERSION"))
}

/// Rewrites a catalog query into something DuckDB runs; other queries are returned as is.
pub fn rewrite(sql: &str) -> String {
    if !sql.contains("pg_catalog") {
        return sql.to_owned();
    }
    let mut out = sql.to_owned();
    // OPERATOR(pg_catalog.~) is PostgreSQL's schema-qualified operator syntax
    for op in ["!~~*", "!~~", "~~*", "~~", "!~*", "!~", "~*", "~", "=", "<>"] {
        out = out.replace(&format!("OPERATOR(pg_catalog.{op})"), op);
    }
    out = out.replace(" COLLATE pg_catalog.default", "");
    out = out.replace("pg_catalog.pg_get_userbyid(", "pg_get_userbyid(");
    // psql's \dt: lake tables are views
    out = out.replace("c.relkind IN ('r','p','')", "c.relkind IN ('r','p','v','')");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_catalog_queries() {
        assert_eq!(rewrite("SELECT '~' AS x"), "SELECT '~' AS x");
        let q = "SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default";
        assert_eq!(rewrite(q), "SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname ~ '^(x)$'");
    }
}
