"""The web tier at scale, on real daphne processes, a real Redis and the embedded AWS endpoint (issue 8).

- A connect storm far larger than any Redis connection pool: every handshake succeeds, every client
  gets its snapshot and the next standings version with its own row (from the board relay).
- A client that does not read is closed and dropped; a client next to it gets every version.
- Two daphne processes sharing one Redis: viewers on either see standings changes and race switches,
  and a rider on one shows up for viewers on the other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import pytest
import websockets

from processors import clients as processor_clients
from processors.handlers import publisher
from processors.table import LiveRow, LiveStandings

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(300)]

ORIGIN = "http://127.0.0.1"


def standings(race_id: int, class_id: int, racers: int, version: int) -> LiveStandings:
    rows = [LiveRow(i, f"Racer {i}", float(100_000 - i), 60, 120.5, False) for i in range(1, racers + 1)]
    return LiveStandings(race_id, class_id, rows, version, 1_764_172_800_000 + version)


@pytest.fixture
def publisher_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """The real publisher's Redis path (channel_wire), pointed at the test Redis."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    processor_clients.clear()
    yield
    processor_clients.clear()


async def receive_json(ws, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def receive_until(ws, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await receive_json(ws, max(0.1, deadline - time.monotonic()))
        if predicate(message):
            return message


async def test_connect_storm_larger_than_the_redis_pool(web_tier, publisher_redis):
    ids = web_tier.scenario("setup", "--racers", "300", "--seconds", "600")
    base = web_tier.start_daphne()
    race_id, class_id = ids["race_a"], ids["class_id"]
    # 400 sockets at once (the pool of the site's Redis client holds 32; the old layer failed at ~100)
    paths = [f"/ws/races/{race_id}/?racer={i}" for i in range(1, int(os.environ.get("STORM_N", "201")))]
    paths += [f"/ws/classes/{class_id}/?racer={i}" for i in range(101, 100 + int(os.environ.get("STORM_N", "201")))]

    async def connect(path: str):
        return await websockets.connect(base + path, origin=ORIGIN, open_timeout=60, max_size=None)

    clients = await asyncio.gather(*(connect(path) for path in paths))
    snapshots = await asyncio.gather(*(receive_json(ws, 60) for ws in clients))
    assert all(s["type"] == "snapshot" and s["race_id"] == race_id for s in snapshots)

    # One publish of a 300-racer race: every client gets it, with its own row (most beyond the top 100)
    await asyncio.to_thread(
        publisher.publish, publisher.get_redis(), [standings(race_id, class_id, 300, version=5)], 100
    )
    updates = await asyncio.gather(*(receive_until(ws, lambda m: m["type"] == "standings") for ws in clients))
    for path, update in zip(paths, updates, strict=True):
        racer = int(path.rsplit("=", 1)[1])
        assert update["version"] == 5 and update["total"] == 300 and len(update["rows"]) == 100
        assert update["racer"]["racer_id"] == racer and update["racer"]["rank"] == racer
    await asyncio.gather(*(ws.close() for ws in clients))
    log = web_tier.log("daphne-1")
    assert "Traceback" not in log and "MaxConnectionsError" not in log


def _raw_websocket(port: int, path: str) -> socket.socket:
    """A client that completes the handshake and then never reads (tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {ORIGIN}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def test_a_client_that_does_not_read_is_dropped_and_others_get_every_version(web_tier, publisher_redis):
    ids = web_tier.scenario("setup", "--racers", "1000", "--seconds", "600")
    # 1,000 rows a message (~100 KB): the slow client's buffers fill within a few messages
    base = web_tier.start_daphne(ALLEYCAT_TOP_ROWS="1000", ALLEYCAT_WS_MAX_PENDING="8")
    port = web_tier.ports[0]
    race_id, class_id = ids["race_a"], ids["class_id"]
    path = f"/ws/races/{race_id}/"
    slow = await asyncio.to_thread(_raw_websocket, port, path)
    good = await websockets.connect(base + path, origin=ORIGIN, max_size=None)
    assert (await receive_json(good))["type"] == "snapshot"

    versions = list(range(1, 121))
    received: list[int] = []

    async def read_all():
        while len(received) < len(versions):
            message = await receive_json(good, 60)
            if message["type"] == "standings":
                received.append(message["version"])

    reader = asyncio.ensure_future(read_all())
    for version in versions:
        await asyncio.to_thread(
            publisher.publish, publisher.get_redis(), [standings(race_id, class_id, 1000, version)], 1000
        )
        await asyncio.sleep(0.02)
    await asyncio.wait_for(reader, 120)
    assert received == versions  # every version, in order, while the other client was stuck

    # The slow client was closed and its connection dropped: reading now ends in EOF or a reset.
    def drain() -> int:
        slow.settimeout(30)
        total = 0
        try:
            while chunk := slow.recv(1 << 20):
                total += len(chunk)
        except ConnectionResetError:
            pass
        return total

    got = await asyncio.to_thread(drain)
    slow.close()
    assert got < 40 * 100_000  # far less than the 120 messages of ~100 KB each
    await good.close()
    log = web_tier.log("daphne-1")
    assert "does not keep up" in log and "Traceback" not in log


async def test_two_web_processes_share_standings_race_switches_and_riders(web_tier):
    web_tier.start_runner()
    first, second = web_tier.start_daphne(), web_tier.start_daphne()
    ids = web_tier.scenario("setup", "--racers", "4", "--seconds", "30")  # race A starts now, with all running
    race_a, race_b, class_id = ids["race_a"], ids["race_b"], ids["class_id"]
    session = web_tier.scenario("session", "rider1")["sessionid"]

    viewers = {
        "class on 1": await websockets.connect(f"{first}/ws/classes/{class_id}/?racer=1", origin=ORIGIN),
        "class on 2": await websockets.connect(f"{second}/ws/classes/{class_id}/?racer=1", origin=ORIGIN),
        "race on 2": await websockets.connect(f"{second}/ws/races/{race_a}/?racer=1", origin=ORIGIN),
    }
    for ws in viewers.values():
        assert (await receive_json(ws))["type"] == "snapshot"

    # A rider on process 1 ...
    rider = await websockets.connect(
        f"{first}/ws/ride/", origin=ORIGIN, additional_headers={"Cookie": f"sessionid={session}"}
    )
    for _ in range(4):
        reading = {"event": "update", "racerId": 1, "classId": class_id, "cadence": 90, "resistance": 40}
        await rider.send(json.dumps(reading))
        ack = await receive_json(rider)
        assert ack["type"] == "ack" and ack["race_id"] == race_a
        await asyncio.sleep(1.0)

    # ... shows up for viewers on both processes (through Kinesis, the aggregator and the publisher)
    for name, ws in viewers.items():
        update = await receive_until(ws, lambda m: m["type"] == "standings" and m["total"] >= 1, timeout=90)
        assert update["race_id"] == race_a and update["rows"][0]["racer_id"] == 1, name
        assert update["racer"]["racer_id"] == 1
    await rider.close()

    # The race switch reaches the class viewers of both processes: the event, then a snapshot of race B
    await asyncio.sleep(max(0.0, ids["a_ends_at"] - time.time() + 0.5))
    assert race_b in web_tier.scenario("rotate")["started"]
    for name in ("class on 1", "class on 2"):
        ws = viewers[name]
        started = await receive_until(ws, lambda m: m["type"] == "race.started", timeout=30)
        assert started["race"]["id"] == race_b and started["race"]["class_id"] == class_id, name
        snapshot = await receive_until(ws, lambda m: m["type"] == "snapshot", timeout=30)
        assert snapshot["race_id"] == race_b and snapshot["race"]["id"] == race_b, name
    finished = await receive_until(viewers["race on 2"], lambda m: m["type"] == "race.finished", timeout=30)
    assert finished["race"]["id"] == race_a
    for ws in viewers.values():
        await ws.close()
    for name in ("daphne-1", "daphne-2"):
        assert "Traceback" not in web_tier.log(name), name
