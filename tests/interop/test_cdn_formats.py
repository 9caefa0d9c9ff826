"""CloudFront, Fastly and Akamai logs of the same generated traffic
(`qos generate --cdn-logs FORMAT`), replayed into `cdn_edge`: every additive
column per window × owner × PoP equals DuckDB's SQL over the same records,
written from each vendor's field meanings (README "Input: CDN access logs")."""
import duckdb
import pytest
from conftest import qos

W = 120_000
GEN = ["--seed", "31", "--sessions", "400", "--slow-pop", "fastly/ams", "--late-fraction", "0.01"]
ADDITIVE = ["requests", "http_errors", "http_2xx", "http_3xx", "http_4xx", "http_5xx", "slow_responses",
            "bytes_out", "cache_hits", "cache_misses", "incomplete_responses"]

CLOUDFRONT_COLUMNS = [
    "date", "time", "x_edge_location", "sc_bytes", "c_ip", "cs_method", "cs_host", "cs_uri_stem", "sc_status",
    "cs_referer", "cs_user_agent", "cs_uri_query", "cs_cookie", "x_edge_result_type", "x_edge_request_id",
    "x_host_header", "cs_protocol", "cs_bytes", "time_taken", "x_forwarded_for", "ssl_protocol", "ssl_cipher",
    "x_edge_response_result_type", "cs_protocol_version", "fle_status", "fle_encrypted_fields", "c_port",
    "time_to_first_byte", "x_edge_detailed_result_type", "sc_content_type", "sc_content_len", "sc_range_start",
    "sc_range_end"]


def classes(status):
    return f"""count(*) FILTER (WHERE {status} > 299) AS http_errors,
      count(*) FILTER (WHERE {status} BETWEEN 200 AND 299) AS http_2xx,
      count(*) FILTER (WHERE {status} BETWEEN 300 AND 399) AS http_3xx,
      count(*) FILTER (WHERE {status} BETWEEN 400 AND 499) AS http_4xx,
      count(*) FILTER (WHERE {status} BETWEEN 500 AND 599) AS http_5xx"""


SQL = {
    "cloudfront": f"""
    SELECT (epoch_ms(strptime(date || ' ' || time, '%Y-%m-%d %H:%M:%S')) // {W}) * {W} AS w,
      split_part(cs_host, '.', 1) AS owner, x_edge_location AS pop, count(*) AS requests, {classes('sc_status')},
      count(*) FILTER (WHERE time_taken * 1000 > 200) AS slow_responses, sum(sc_bytes) AS bytes_out,
      count(*) FILTER (WHERE x_edge_result_type IN ('Hit', 'RefreshHit') OR x_edge_detailed_result_type = 'OriginShieldHit') AS cache_hits,
      count(*) FILTER (WHERE x_edge_result_type = 'Miss') AS cache_misses,
      count(*) FILTER (WHERE x_edge_response_result_type = 'ClientCommError' OR x_edge_detailed_result_type = 'ClientCommError') AS incomplete_responses
    FROM read_csv($path, delim = '\t', header = false, quote = '', escape = '',
                  columns = {{{', '.join(f"'{c}': '{'BIGINT' if c in ('sc_bytes', 'sc_status') else 'DOUBLE' if c in ('time_taken', 'time_to_first_byte') else 'VARCHAR'}'" for c in CLOUDFRONT_COLUMNS)}}})
    GROUP BY ALL""",
    "fastly": f"""
    SELECT (epoch_ms(strptime(timestamp, '%Y-%m-%dT%H:%M:%S%z')) // {W}) * {W} AS w,
      service_id AS owner, pop, count(*) AS requests, {classes('status')},
      count(*) FILTER (WHERE time_elapsed / 1000.0 > 200) AS slow_responses, sum(resp_body_size) AS bytes_out,
      count(*) FILTER (WHERE cache_status LIKE 'HIT%') AS cache_hits,
      count(*) FILTER (WHERE cache_status IN ('MISS', 'PASS')) AS cache_misses,
      0 AS incomplete_responses
    FROM read_ndjson($path, columns = {{timestamp: 'VARCHAR', service_id: 'VARCHAR', pop: 'VARCHAR', status: 'BIGINT',
                                        time_elapsed: 'BIGINT', resp_body_size: 'BIGINT', cache_status: 'VARCHAR'}})
    GROUP BY ALL""",
    "akamai": f"""
    SELECT (CAST(floor(CAST(reqTimeSec AS DOUBLE)) AS BIGINT) * 1000 // {W}) * {W} AS w,
      cp AS owner, edgeIP AS pop, count(*) AS requests, {classes('CAST(statusCode AS BIGINT)')},
      count(*) FILTER (WHERE CAST(turnAroundTimeMSec AS BIGINT) + CAST(transferTimeMSec AS BIGINT) > 200) AS slow_responses,
      sum(CAST(bytes AS BIGINT)) AS bytes_out,
      count(*) FILTER (WHERE cacheStatus = '1') AS cache_hits,
      count(*) FILTER (WHERE cacheStatus = '0') AS cache_misses,
      count(*) FILTER (WHERE lastByte = '0') AS incomplete_responses
    FROM read_ndjson($path, columns = {{reqTimeSec: 'VARCHAR', cp: 'VARCHAR', edgeIP: 'VARCHAR', statusCode: 'VARCHAR',
                                        turnAroundTimeMSec: 'VARCHAR', transferTimeMSec: 'VARCHAR', bytes: 'VARCHAR',
                                        cacheStatus: 'VARCHAR', lastByte: 'VARCHAR'}})
    GROUP BY ALL""",
}


@pytest.mark.parametrize("fmt", ["cloudfront", "fastly", "akamai", "edgecast"])
def test_cdn_edge_of_each_format_equals_duckdb_over_the_same_records(fmt, tmp_path):
    data = tmp_path / f"{fmt}.log"
    qos("generate", *GEN, "--cdn-logs", fmt, "--out", data)
    r = qos("replay", "--format", fmt, data, "--sink", tmp_path / "out", "--quiet")
    assert "rejected" not in r.stdout.split("\n")[1] or "rejected 0" in r.stdout, r.stdout
    con = duckdb.connect()
    sums = ", ".join(f"sum({c})" for c in ADDITIVE)
    ours = {(row[0], row[1], row[2]): list(row[3:]) for row in con.execute(
        f"SELECT epoch_ms(window_start), owner, pop, {sums} FROM read_parquet('{tmp_path}/out/cdn_edge/**/*.parquet') "
        f"WHERE cdn = '{fmt}' GROUP BY ALL").fetchall()}
    if fmt == "edgecast":
        sql = SQL_EDGECAST
    else:
        sql = SQL[fmt]
    theirs = {(row[0], row[1], row[2]): [int(x) for x in row[3:]]
              for row in con.execute(f"SELECT w, owner, pop, requests, {', '.join(ADDITIVE[1:])} FROM ({sql})",
                                     {"path": str(data)}).fetchall()}
    assert len(ours) > 50
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k] == theirs[k], (k, dict(zip(ADDITIVE, ours[k])), dict(zip(ADDITIVE, theirs[k])))
    # The degraded PoP is the slowest in every format's view.
    slow = con.execute(f"SELECT pop, sum(slow_responses) / sum(requests) AS s FROM read_parquet('{tmp_path}/out/cdn_edge/**/*.parquet') "
                       "GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    assert slow[1] > 0.5, slow


SQL_EDGECAST = f"""
    SELECT (CAST(floor(timestamp) AS BIGINT) * 1000 // {W}) * {W} AS w,
      coalesce(regexp_extract(split_part(rewritten_path, '/slices', 2), '/([0-9A-Fa-f]{{32}})/[0-9A-Fa-f]{{32}}/', 1), '') AS owner,
      pop, count(*) AS requests, {classes('status_code')},
      count(*) FILTER (WHERE write_time * 1000 > 200) AS slow_responses, sum(bytes_out) AS bytes_out,
      count(*) FILTER (WHERE cache_status IN ('TCP_HIT', 'TCP_EXPIRED_HIT', 'TCP_PARTIAL_HIT')) AS cache_hits,
      count(*) FILTER (WHERE cache_status IN ('TCP_MISS', 'TCP_EXPIRED_MISS', 'TCP_CLIENT_REFRESH_MISS')) AS cache_misses,
      count(*) FILTER (WHERE last_byte_served = 0) AS incomplete_responses
    FROM read_ndjson($path, columns = {{timestamp: 'DOUBLE', pop: 'VARCHAR', status_code: 'BIGINT', cache_status: 'VARCHAR',
                                        write_time: 'DOUBLE', bytes_out: 'BIGINT', rewritten_path: 'VARCHAR',
                                        last_byte_served: 'BIGINT'}})
    GROUP BY ALL"""
