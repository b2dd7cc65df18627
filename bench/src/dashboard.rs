//! The dashboard query set shared by the mount, socket and compare benchmarks.

/// The dashboard: what a BI tool's tiles ask of an events table and an orders table. Every
/// result is exact (no float sums, whose last digits depend on thread scheduling), so the
/// mount's answers can be checked against the local files'. Aggregates over 2–4 columns, a
/// filter on a timestamp, top-Ns and a join (issue 10's query set).
pub const DASHBOARD: [(&str, &str); 8] = [
    (
        "events per day and kind",
        "SELECT day, kind, count(*) AS events, sum(duration_ms) AS total_ms FROM web.events GROUP BY ALL ORDER BY ALL",
    ),
    (
        "top pages",
        "SELECT page, count(*) AS views FROM web.events WHERE kind = 'view' GROUP BY page \
         ORDER BY views DESC, page LIMIT 10",
    ),
    (
        "revenue by country, device",
        "SELECT country, device, sum(revenue) AS revenue, count(*) AS buys FROM web.events \
         WHERE kind = 'buy' AND NOT is_bot GROUP BY ALL ORDER BY ALL",
    ),
    (
        "funnel by referrer",
        "SELECT referrer, count(*) FILTER (kind = 'view') AS views, count(*) FILTER (kind = 'click') AS clicks, \
         count(*) FILTER (kind = 'buy') AS buys FROM web.events GROUP BY referrer ORDER BY referrer",
    ),
    (
        "orders by region, month",
        "SELECT region, date_trunc('month', ordered_at) AS month, count(*) AS orders, sum(amount) AS amount \
         FROM sales.orders GROUP BY ALL ORDER BY ALL",
    ),
    (
        "top customers",
        "SELECT c.name, count(*) AS orders, sum(o.amount) AS total FROM sales.orders o \
         JOIN sales.customers c USING (customer_id) GROUP BY c.name ORDER BY total DESC, c.name LIMIT 10",
    ),
    // One day of a table that spans many (`ts` is one second per row from 2026-02-01): row
    // groups outside the day can be skipped by their statistics.
    (
        "one day, hourly",
        "SELECT date_trunc('hour', ts) AS hour, count(*) AS events, count(DISTINCT user_id) AS users \
         FROM web.events WHERE ts >= TIMESTAMP '2026-02-02' AND ts < TIMESTAMP '2026-02-03' GROUP BY hour ORDER BY hour",
    ),
    (
        "top campaigns by revenue",
        "SELECT campaign, device, sum(revenue) AS revenue, count(*) AS events FROM web.events \
         WHERE campaign IS NOT NULL GROUP BY ALL ORDER BY revenue DESC, campaign, device LIMIT 10",
    ),
];
