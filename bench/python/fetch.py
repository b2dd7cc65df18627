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


def median_seconds(runs, fetch):
    """Median wall time of `runs` calls of `fetch` after one warm-up; also the row count."""
    rows = len(fetch())
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fetch()
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


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
    in_process, local_rows = median_seconds(a.runs, lambda: local.execute(a.sql).fetchall())

    conn = psycopg.connect(host=a.socket_dir, port=a.port, dbname="lake", user="bench", autocommit=True)

    def socket_fetch(binary):
        with conn.cursor(binary=binary) as cur:
            cur.execute(a.sql)
            return cur.fetchall()

    text, text_rows = median_seconds(a.runs, lambda: socket_fetch(False))
    binary, binary_rows = median_seconds(a.runs, lambda: socket_fetch(True))
    print(json.dumps({
        "in_process": in_process,
        "socket_text": text,
        "socket_binary": binary,
        "rows": [local_rows, text_rows, binary_rows],
    }))


if __name__ == "__main__":
    main()
