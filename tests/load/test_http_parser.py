"""Malformed HTTP reaches gunicorn's parser, not the application: each gets a clear 4xx, with
gunicorn's Python parser and with its C parser (``gunicorn_h1c``, the ``fast`` extra, which
``perceptlab/gunicorn_conf.py`` uses when installed), and the server answers well-formed
requests afterwards. (Hostile requests that parse — odd paths, bodies, JSON — are the
fuzz's, ``test_fuzz.py``, through Django's test client.)"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from harness import Gunicorn, database_url, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HOST = b"Host: 127.0.0.1\r\n"
MALFORMED: dict[str, bytes] = {
    "request line over the limit": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n",
    "header without a colon": b"GET /healthz HTTP/1.1\r\n" + HOST + b"Broken\r\n\r\n",
    "101 headers": b"GET /healthz HTTP/1.1\r\n"
    + HOST
    + b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    + b"\r\n",
    "header over 8190 bytes": b"GET /healthz HTTP/1.1\r\n"
    + HOST
    + b"X-A: "
    + b"a" * 9000
    + b"\r\n\r\n",
    "control byte in the method": b"G\x01T /healthz HTTP/1.1\r\n" + HOST + b"\r\n",
    "space in the path": b"GET /heal thz HTTP/1.1\r\n" + HOST + b"\r\n",
    "negative Content-Length": b"POST /healthz HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n",
    "two Content-Lengths": b"POST /healthz HTTP/1.1\r\n"
    + HOST
    + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "Content-Length with chunked": b"POST /healthz HTTP/1.1\r\n"
    + HOST
    + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": b"POST /healthz HTTP/1.1\r\n"
    + HOST
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "no request line": b"\r\n\r\n\r\n" + HOST + b"\r\n",
}


@pytest.fixture(params=["python", "fast"])
def server(request: pytest.FixtureRequest, settings, tmp_path: Path) -> Iterator[Gunicorn]:  # type: ignore[no-untyped-def]
    parser = str(request.param)
    if parser == "fast" and importlib.util.find_spec("gunicorn_h1c") is None:
        pytest.skip("gunicorn_h1c is not installed (pip install -e '.[fast]': needs a C compiler)")
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "PERCEPTLAB_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PERCEPTLAB_VAR_DIR": str(tmp_path),
        "PERCEPTLAB_LOG_LEVEL": "WARNING",
        "PERCEPTLAB_HTTP_PARSER": parser,  # "fast" refuses to start without the C parser
    }
    web = Gunicorn(port=free_port(), env=env, workers=1, threads=2, log=tmp_path / "g.log")
    web.start()
    yield web
    web.stop()


def _status(port: int, raw: bytes) -> int:
    """The status gunicorn answers ``raw`` with (0: it closed without an answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/1.") else 0


def test_malformed_http_gets_a_4xx_from_either_parser(server: Gunicorn) -> None:
    assert _status(server.port, b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n") == 200
    answered = {name: _status(server.port, raw) for name, raw in MALFORMED.items()}
    assert all(400 <= status < 500 for status in answered.values()), answered
    assert _status(server.port, b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n") == 200
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "[CRITICAL]" not in log, log[-2000:]
