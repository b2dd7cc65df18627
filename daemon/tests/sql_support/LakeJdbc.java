// pgjdbc against warmlake's SQL socket over TCP (pgjdbc has no Unix sockets of its own).
// Usage: java -cp postgresql.jar:. LakeJdbc <port> <password>
// Prints what it read, one fact per line, for sql_jdbc.rs to compare with DuckDB.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class LakeJdbc {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", "tester");
        props.setProperty("password", args[1]);
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/lake";
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName());
            try (ResultSet rs = meta.getTables(null, "sales", "%", null)) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
                }
            }
            try (ResultSet rs = meta.getColumns(null, "sales", "orders", null)) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            // a fetch size streams through a portal: only inside a transaction, as in PostgreSQL;
            // other statements run on the same connection while the result is read
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement(); Statement other = conn.createStatement()) {
                st.setFetchSize(1000);
                long count = 0;
                long sum = 0;
                long interleaved = 0;
                try (ResultSet rs = st.executeQuery("SELECT i FROM range(100000) t(i)")) {
                    while (rs.next()) {
                        count++;
                        sum += rs.getLong(1);
                        if (count % 25000 == 1) {
                            try (ResultSet one = other.executeQuery("SELECT count(*) FROM sales.orders")) {
                                one.next();
                                interleaved += one.getLong(1) > 0 ? 1 : 0;
                            }
                        }
                    }
                }
                System.out.println("fetched " + count + " " + sum);
                System.out.println("interleaved " + interleaved);
            }
            conn.commit();
            conn.setAutoCommit(true);
            String q = "SELECT count(*) FROM sales.orders WHERE id < ? AND ordered_at >= ?";
            try (PreparedStatement ps = conn.prepareStatement(q)) {
                ps.setLong(1, 50);
                ps.setDate(2, Date.valueOf("2024-01-01"));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("counted " + rs.getLong(1));
                }
            }
        }
    }
}
