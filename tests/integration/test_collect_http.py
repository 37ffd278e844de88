"""``diffwatch collect http``: the ingest endpoint against a real uvicorn server and Postgres.

The server runs in a thread on a free loopback port (``Running``), as the CLI serves it; one
test runs the CLI itself. Clients speak plain HTTP/1.1 (http.client), as any client would.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from diffwatch.collectors.http.app import IngestOptions
from diffwatch.collectors.http.serve import Running
from diffwatch.model.client_address import parse_trusted
from tests.corpus.log_lines import good_record
from tests.helpers import cli_env, diffwatch_cmd

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}
ARRAY = {**AUTH, "Content-Type": "application/json"}


def post(
    url: str, body: bytes | Iterator[bytes], headers: dict[str, str], path: str = "/v1/generations"
) -> tuple[int, dict[str, str], Any]:
    """POST ``body`` (bytes, or chunks sent with chunked encoding); (status, headers, JSON)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        chunked = not isinstance(body, bytes)
        conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        res = conn.getresponse()
        data = res.read()
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer 413 and close while a chunked body is still being sent.
        res = conn.getresponse()
        data = res.read()
    finally:
        conn.close()
    return res.status, {k.lower(): v for k, v in res.getheaders()}, json.loads(data or b"null")


def get(url: str, path: str) -> tuple[int, Any]:
    """GET ``path``; (status, JSON)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


def lines(records: list[dict[str, Any]]) -> bytes:
    """Records as a JSON-lines body."""
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def options(conninfo: str, **kw: Any) -> IngestOptions:
    """Test options: the token above, small limits (64 KiB sent, 256 KiB decoded)."""
    base: dict[str, Any] = {
        "token": TOKEN,
        "max_body_bytes": 64 * 1024,
        "max_decoded_bytes": 256 * 1024,
        "max_records": 500,
    }
    return IngestOptions(conninfo=conninfo, **{**base, **kw})


@pytest.fixture
def server(conninfo: str) -> Iterator[Running]:
    with Running(options(conninfo)) as running:
        yield running


def count(sql, table: str = "generations") -> int:
    return sql(f"SELECT count(*) FROM {table}")[0][0]


def test_the_same_batch_sent_three_times_is_stored_once(server: Running, sql) -> None:
    body = lines([good_record(i) for i in range(40)])
    answers = [post(server.url, body, NDJSON) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert answers[0][2] == {"accepted": 40, "duplicates": 0, "rejected": []}
    assert answers[1][2] == answers[2][2] == {"accepted": 0, "duplicates": 40, "rejected": []}
    assert count(sql) == 40
    assert sql("SELECT count(DISTINCT request_id) FROM generations")[0][0] == 40
    # Each row says where it came from: the client and its index in the batch.
    assert sql("SELECT source, source_offset FROM generations WHERE request_id = 'req-00000007'")[
        0
    ] == ("http:127.0.0.1", 7)
    status = sql("SELECT kind, ingested, duplicates, rejected FROM collector_status")
    assert status == [("http", 40, 80, 0)]
    # Duplicates inside one batch are stored once too.
    code, _, ans = post(server.url, lines([good_record(100), good_record(100)]), NDJSON)
    assert (code, ans["accepted"], ans["duplicates"]) == (200, 1, 1)


def test_bad_records_are_refused_with_reasons_and_stored_once(server: Running, sql) -> None:
    bad_steps = good_record(3, steps=-3)
    no_model = good_record(4)
    del no_model["model"]
    body = (
        lines([good_record(0), good_record(1)])
        + b'{"request_id": "req-broken", "model": \n'  # index 2: not JSON
        + lines([bad_steps, no_model])  # indexes 3 and 4
        + b"\n"  # index 5: blank, skipped
        + b"[1, 2]\n"  # index 6: not an object
        + lines([good_record(7, timestamp="2026-11-21T11:00:00")])  # index 7: no offset
        # index 8: parses, but is refused by the database (too long for its btree index)
        + lines([good_record(8, model=random.Random(8).randbytes(3000).hex())])
    )
    code, _, ans = post(server.url, body, NDJSON)
    assert code == 200 and ans["accepted"] == 2 and ans["duplicates"] == 0
    got = {r["index"]: r for r in ans["rejected"]}
    assert sorted(got) == [2, 3, 4, 6, 7, 8]
    assert got[3]["request_id"] == "req-00000003"
    assert '"steps" must be a positive integer, got -3' in got[3]["reason"]
    assert got[4]["reason"] == 'required field "model" is missing'
    assert "not valid JSON" in got[2]["reason"] and got[2]["request_id"] is None
    assert "must be a JSON object" in got[6]["reason"]
    assert "has no UTC offset" in got[7]["reason"]
    assert got[8]["reason"].startswith("the database refused this record: index row size")
    assert got[8]["request_id"] == "req-00000008"
    rows = sql(
        "SELECT source, source_offset, line_no, reason, raw FROM rejected_records "
        "ORDER BY source_offset"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("http:127.0.0.1", i, i + 1) for i in (2, 3, 4, 6, 7, 8)
    ]
    assert [r[3] for r in rows] == [got[i]["reason"] for i in (2, 3, 4, 6, 7, 8)]
    assert rows[1][4] == json.dumps(bad_steps)
    # Retries answer the same refusals and store nothing twice.
    for _ in range(2):
        code, _, again = post(server.url, body, NDJSON)
        assert code == 200 and again["rejected"] == ans["rejected"] and again["duplicates"] == 2
    assert count(sql, "rejected_records") == 6 and count(sql) == 2


def test_ndjson_array_and_gzip_bodies_are_all_accepted(server: Running, sql) -> None:
    def recs(lo: int) -> list[dict[str, Any]]:
        return [good_record(i) for i in range(lo, lo + 10)]

    gz = {**NDJSON, "Content-Encoding": "gzip"}
    gz_array = {**ARRAY, "Content-Encoding": "gzip"}
    sent = [
        post(server.url, lines(recs(0)), NDJSON),
        post(server.url, lines(recs(10)).replace(b"\n", b"\r\n"), NDJSON),
        post(server.url, json.dumps(recs(20)).encode(), ARRAY),
        post(server.url, gzip.compress(lines(recs(30))), gz),
        post(server.url, gzip.compress(json.dumps(recs(40)).encode()), gz_array),
        post(
            server.url,
            lines(recs(50)),
            {**AUTH, "Content-Type": "application/x-ndjson; charset=utf-8"},
        ),
        post(server.url, iter([lines(recs(60))[:500], lines(recs(60))[500:]]), NDJSON),
    ]
    assert [(s[0], s[2]["accepted"]) for s in sent] == [(200, 10)] * 7
    assert count(sql) == 70
    # An element of an array that is not a record is refused alone.
    code, _, ans = post(server.url, json.dumps([good_record(80), 5]).encode(), ARRAY)
    assert code == 200 and ans["accepted"] == 1 and ans["rejected"][0]["index"] == 1


def test_requests_without_the_right_token_are_refused(server: Running, sql) -> None:
    body = lines([good_record(0)])
    ctype = {"Content-Type": "application/x-ndjson"}
    for headers in (
        ctype,
        {**ctype, "Authorization": "Bearer wrong"},
        {**ctype, "Authorization": f"Basic {TOKEN}"},
        {**ctype, "Authorization": f"Bearer {TOKEN}x"},
    ):
        code, h, ans = post(server.url, body, headers)
        assert code == 401 and h["www-authenticate"].startswith("Bearer")
        assert "bearer token" in ans["error"]
    assert count(sql) == 0
    assert post(server.url, body, {**ctype, "Authorization": f"bearer  {TOKEN} "})[0] == 200


def test_oversize_bodies_and_gzip_bombs_are_refused(server: Running, sql) -> None:
    big = lines([good_record(i, prompt="x" * 1000) for i in range(80)])  # ~120 KiB > 64 KiB
    code, _, ans = post(server.url, big, NDJSON)
    assert code == 413 and "65536 byte limit" in ans["error"]
    # Chunked: no Content-Length; the server counts what arrives.
    code, _, ans = post(
        server.url, iter([big[i : i + 8192] for i in range(0, len(big), 8192)]), NDJSON
    )
    assert code == 413
    # A gzip bomb: 40 KiB on the wire, 40 MiB inflated; refused at the 256 KiB limit.
    bomb = gzip.compress(b" " * (40 << 20), 9)
    assert len(bomb) < 64 * 1024
    code, _, ans = post(server.url, bomb, {**NDJSON, "Content-Encoding": "gzip"})
    assert code == 413 and "decompressed body is over the 262144 byte limit" in ans["error"]
    code, _, ans = post(server.url, b"{}\n" * 501, NDJSON)
    assert code == 413 and "501 records, over the 500 record limit" in ans["error"]
    assert count(sql) == 0 and count(sql, "rejected_records") == 0


def test_unknown_types_and_undecodable_bodies_store_nothing(server: Running, sql) -> None:
    body = lines([good_record(0)])
    code, _, ans = post(server.url, body, {**AUTH, "Content-Type": "text/plain"})
    assert code == 415 and "application/x-ndjson" in ans["error"]
    assert post(server.url, body, {**NDJSON, "Content-Encoding": "br"})[0] == 415
    code, _, ans = post(server.url, body, {**NDJSON, "Content-Encoding": "gzip"})
    assert code == 400 and "not valid gzip" in ans["error"]
    code, _, ans = post(
        server.url, gzip.compress(body)[:-12], {**NDJSON, "Content-Encoding": "gzip"}
    )
    assert code == 400 and "cut short" in ans["error"]
    code, _, ans = post(server.url, b'[{"request_id": ', ARRAY)
    assert code == 400 and "not valid JSON" in ans["error"]
    code, _, ans = post(server.url, json.dumps(good_record(0)).encode(), ARRAY)
    assert code == 400 and "JSON array" in ans["error"]
    assert count(sql) == 0 and count(sql, "rejected_records") == 0


def test_a_slow_database_answers_429_then_recovers(conninfo: str, sql) -> None:
    """A statement over the timeout (a table locked by someone else) gives a 429 with
    Retry-After and stores nothing; the same batch is stored once the lock is gone."""
    with Running(options(conninfo, statement_timeout_ms=300, retry_after_s=3)) as srv:
        body = lines([good_record(i) for i in range(5)])
        with psycopg.connect(conninfo) as locker:
            locker.execute("LOCK TABLE generations IN ACCESS EXCLUSIVE MODE")
            code, h, ans = post(srv.url, body, NDJSON)
            assert code == 429 and h["retry-after"] == "3" and "retry" in ans["error"]
        code, _, ans = post(srv.url, body, NDJSON)
        assert code == 200 and ans["accepted"] == 5
    assert count(sql) == 5


def test_liveness_and_readiness(server: Running) -> None:
    assert get(server.url, "/healthz") == (200, {"status": "ok"})
    assert get(server.url, "/readyz") == (200, {"status": "ready"})


def serve_cli(env: dict[str, str], tmp_path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``diffwatch collect http`` as a subprocess on a free loopback port, with the token
    above in a file under ``tmp_path``; (the process, its base URL)."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ("collect", "http", "--port", str(port), "--token-file", str(token), *extra)
    proc = subprocess.Popen(
        diffwatch_cmd(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_answering(proc: subprocess.Popen, url: str, path: str, timeout_s: float = 60) -> None:
    """Wait until ``path`` answers 200 (the process must stay up meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if get(url, path)[0] == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.1)


def test_the_cli_serves_with_a_token_file_and_refuses_to_run_open(
    db_url: str, sql, tmp_path
) -> None:
    env = cli_env(db_url)
    refused = subprocess.run(
        diffwatch_cmd("collect", "http", "--port", "1", "--host", "0.0.0.0", "--no-auth"),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "--no-auth on 0.0.0.0" in refused.stderr
    env.pop("DIFFWATCH_INGEST_TOKEN_FILE", None)
    refused = subprocess.run(
        diffwatch_cmd("collect", "http", "--port", "1"),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "--token-file" in refused.stderr

    proc, url = serve_cli(env, tmp_path)
    try:
        wait_answering(proc, url, "/readyz")
        code, _, ans = post(url, lines([good_record(i) for i in range(3)]), NDJSON)
        assert (code, ans["accepted"]) == (200, 3)
        assert post(url, lines([good_record(9)]), {"Content-Type": "application/json"})[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert count(sql) == 3


def test_concurrent_identical_batches_store_each_row_once(server: Running, sql) -> None:
    body = lines([good_record(i) for i in range(80)])
    answers: list[Any] = []

    def send() -> None:
        answers.append(post(server.url, body, NDJSON))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a[0] for a in answers] == [200] * 6, answers
    assert sum(a[2]["accepted"] for a in answers) == 80
    assert sum(a[2]["duplicates"] for a in answers) == 5 * 80
    assert count(sql) == 80


def test_the_client_address_comes_from_trusted_proxies_only(conninfo: str, sql) -> None:
    forwarded = {**NDJSON, "X-Forwarded-For": "203.0.113.9"}
    with Running(options(conninfo)) as srv:  # no trusted proxy: the header is ignored
        post(srv.url, lines([good_record(0)]), forwarded)
    with Running(options(conninfo, trusted_proxies=parse_trusted("127.0.0.1"))) as srv:
        post(srv.url, lines([good_record(1)]), forwarded)
    assert sql("SELECT source FROM generations ORDER BY request_id") == [
        ("http:127.0.0.1",),
        ("http:203.0.113.9",),
    ]
