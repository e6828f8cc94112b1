"""Every way DynamoDB or S3 can fail is a 503 with Retry-After on the API and a friendly 503 page on the site.

The failures are real HTTP answers from a small server standing in for the AWS endpoint (botocore parses
them as it would AWS's), a closed port, missing credentials, and a socket that accepts and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from leaderboards import integrations
from processors import clients
from races.models import Racer

pytestmark = pytest.mark.django_db

API_PATHS = [
    "/api/races/{race}/results/",
    "/api/races/{race}/live/",
    "/api/classes/{klass}/leaderboard/",
    "/api/racers/{racer}/",
    "/api/racers/{racer}/results/",
]
PAGE_PATHS = ["/races/{race}/", "/classes/{klass}/leaderboard/", "/racers/{racer}/"]

# (HTTP status, DynamoDB error code): the answers that mean "not now", not "bad request".
DYNAMODB_ERRORS = [
    (400, "ExpiredTokenException"),
    (400, "UnrecognizedClientException"),
    (400, "ThrottlingException"),
    (400, "ProvisionedThroughputExceededException"),
    (400, "RequestLimitExceeded"),
    (400, "ResourceNotFoundException"),
    (400, "AccessDeniedException"),
    (500, "InternalServerError"),
    (503, "ServiceUnavailable"),
]
S3_ERRORS = [(400, "ExpiredToken"), (403, "AccessDenied"), (403, "InvalidAccessKeyId"), (503, "SlowDown"), (500, "")]


def _clear() -> None:
    integrations.clients_clear()
    clients.clear()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Point the site's AWS clients at a URL for this test (with test credentials)."""
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(key, value)

    def use(url: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        _clear()

    yield use
    _clear()


def _serve(status: int, content_type: str, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "test")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = _answer

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ids(make_race, race_class) -> dict[str, int]:
    race = make_race(start_minutes=-10)
    racer = Racer.objects.create(racer_id=7, name="Ada Pedal")
    return {"race": race.pk, "klass": race_class.pk, "racer": racer.pk}


def _assert_api_503(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 503, (path, response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response["Retry-After"]) > 0


def _assert_page_503(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 503, (path, response.status_code)
    assert int(response["Retry-After"]) > 0
    assert "Results are unavailable right now" in response.content.decode()


@pytest.mark.parametrize(("status", "code"), DYNAMODB_ERRORS)
def test_every_dynamodb_failure_is_a_503(client, endpoint, ids, status, code):
    body = orjson.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "nope"})
    for url in _serve(status, "application/x-amz-json-1.0", body):
        endpoint(url)
        for path in API_PATHS:
            _assert_api_503(client, path.format(**ids))
        for path in PAGE_PATHS:
            _assert_page_503(client, path.format(**ids))


@pytest.mark.parametrize(("status", "code"), S3_ERRORS)
def test_every_s3_failure_is_a_503(client, endpoint, ids, status, code):
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>nope</Message></Error>".encode()
    for url in _serve(status, "application/xml", body if code else b""):
        endpoint(url)
        _assert_api_503(client, f"/api/classes/{ids['klass']}/history/")


def test_a_validation_error_of_ours_is_still_a_500_json(client, endpoint, ids):
    # A ValidationException is a bug in a request we built: logged, answered as a JSON 500, not hidden as a 503.
    body = orjson.dumps({"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"})
    for url in _serve(400, "application/x-amz-json-1.0", body):
        endpoint(url)
        response = client.get(f"/api/races/{ids['race']}/live/")
        assert response.status_code == 500 and response.json()["error"]["code"] == "server_error"


def test_missing_credentials_are_a_503(client, endpoint, ids, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    endpoint("http://127.0.0.1:9")
    _assert_api_503(client, f"/api/races/{ids['race']}/results/")
    _assert_api_503(client, f"/api/classes/{ids['klass']}/history/")
    _assert_page_503(client, f"/races/{ids['race']}/")


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers a byte."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)  # kept open, never read or answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/races/{race}/results/",
        "/api/races/{race}/live/",
        "/api/classes/{klass}/history/",
        "/races/{race}/",
        "/racers/{racer}/",
    ],
)
def test_a_hung_endpoint_is_a_503_within_3_seconds(client, endpoint, ids, hung_endpoint, path):
    endpoint(hung_endpoint)
    # Steady state: the clients exist (making one loads botocore's service model, ~0.5 s on a busy machine).
    integrations.aws_client("dynamodb"), integrations.aws_client("s3")
    started = time.monotonic()
    response = client.get(path.format(**ids))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.has_header("Retry-After")
    assert elapsed < 3.0, f"{path}: {elapsed:.2f} s"
