"""The socket against DuckDB in process, as a Python user meets them: the same query's rows
fetched into Python tuples by DuckDB's own Python client over the lake's views on local files,
and by psycopg 3 over warmlake's SQL socket (text results, psycopg's default; and binary).

Run by the `socket` benchmark (bench/src/bin/socket.rs), which starts the daemon; prints one
JSON object: the median seconds of each way, and the row count each saw (they must agree).

    python3 bench/python/fetch.py --script lake.sql --socket-dir DIR --port N --sql Q --runs N
"""

import argparse
import json
import statistics
import time

import duckdb
import psycopg


def median_seconds(runs, fetches):
    """Median wall time of `runs` calls of each of `fetches` after one warm-up of each, taken
    in turn (a slower stretch of a noisy machine slows every way alike); also their row counts."""
    rows = [len(fetch()) for fetch in fetches]
    times = [[] for _ in fetches]
    for _ in range(runs):
        for fetch, spent in zip(fetches, times):
            start = time.perf_counter()
            fetch()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--script", required=True, help="the lake's views over its local files")
    p.add_argument("--socket-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sql", required=True)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()

    local = duckdb.connect()
    with open(a.script) as f:
        local.execute(f.read())
    conn = psycopg.connect(host=a.socket_dir, port=a.port, dbname="lake", user="bench", autocommit=True)

    def socket_fetch(binary):
        with conn.cursor(binary=binary) as cur:
            cur.execute(a.sql)
            return cur.fetchall()

    (in_process, text, binary), rows = median_seconds(a.runs, [
        lambda: local.execute(a.sql).fetchall(),
        lambda: socket_fetch(False),
        lambda: socket_fetch(True),
    ])
    print(json.dumps({
        "in_process": in_process,
        "socket_text": text,
        "socket_binary": binary,
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
