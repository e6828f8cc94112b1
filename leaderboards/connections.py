"""Per-connection bounds of the WebSocket routes: connections per client address, and a bounded send
buffer per client.

``ConnectionLimitMiddleware`` wraps every WebSocket route (``alleycat_site/asgi.py``). It counts open
sockets per client address in this process; one over ``ALLEYCAT_WS_MAX_PER_ADDRESS`` is accepted and
closed at once with 4429 (accepted first, so that the browser sees the code). It also hands the
consumer the server's transport when the server is daphne (``scope["alleycat.transport"]``).

``SendGate`` bounds what a slow client costs. Twisted (daphne's network layer) buffers whatever a
socket cannot take yet without limit; registered as a streaming producer on the transport, the gate
is told when that buffer passes Twisted's high-water mark (64 KiB) and when it has drained. While it
is full, messages wait in the gate; more than ``ALLEYCAT_WS_MAX_PENDING`` waiting and the client is
closed with 4008 and its connection dropped. Other clients never wait for it: nothing here awaits
the client. Under another ASGI server (or the test communicator) there is no transport and the gate
just sends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from channels.consumer import get_handler_name
from django.conf import settings
from zope.interface import implementer

try:
    from twisted.internet.interfaces import IPushProducer
except ImportError:  # pragma: no cover - daphne always brings Twisted
    IPushProducer = None

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY = 4429
CLOSE_TOO_SLOW = 4008
TRANSPORT_KEY = "alleycat.transport"

_open_per_address: Counter[str] = Counter()


def open_connections(address: str) -> int:
    return _open_per_address[address]


def _daphne_transport(send: Any) -> Any | None:
    # daphne.server.Server.create_application passes send=partial(self.handle_reply, protocol).
    if isinstance(send, functools.partial) and send.args:
        return getattr(send.args[0], "transport", None)
    return None


class ConnectionLimitMiddleware:
    def __init__(self, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        client = scope.get("client") or ("", 0)
        address = str(client[0])
        limit = settings.ALLEYCAT_WS_MAX_PER_ADDRESS
        if limit > 0 and _open_per_address[address] >= limit:
            logger.warning("WebSocket refused: %s already has %s open", address, limit)
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_TOO_MANY})
            return None
        transport = _daphne_transport(send)
        if transport is not None:
            scope = dict(scope, **{TRANSPORT_KEY: transport})
        _open_per_address[address] += 1
        try:
            return await self.inner(scope, receive, send)
        finally:
            _open_per_address[address] -= 1
            if _open_per_address[address] <= 0:
                del _open_per_address[address]


@implementer(IPushProducer)
class SendGate:
    """Sends through ``send``; holds messages while the client's socket buffer is full (see module doc)."""

    def __init__(self, transport: Any | None, send: Callable[[dict], Awaitable[None]], max_pending: int) -> None:
        self.transport = transport
        self.send = send
        self.max_pending = max_pending
        self.paused = False
        self.pending: deque[dict] = deque()
        self.overflowed = False
        self.closed = False
        if transport is not None:
            try:
                # daphne upgrades an HTTP connection: twisted.web's HTTPChannel is still registered as the
                # transport's producer, though after the upgrade it has nothing left to produce.
                if getattr(transport, "producer", None) is not None:
                    transport.unregisterProducer()
                transport.registerProducer(self, True)
            except (RuntimeError, AttributeError) as exc:  # then the gate just sends (Twisted buffers)
                logger.warning("No send buffer bound for this WebSocket: %s", exc)
                self.transport = None

    # IPushProducer, called by Twisted on the event loop's thread (daphne runs Twisted on asyncio).
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.pending and not self.closed:
            # daphne runs Twisted on the asyncio reactor: this is the event loop's thread.
            asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self.pending and not self.paused and not self.closed:
            await self.send(self.pending.popleft())

    def stopProducing(self) -> None:
        self.closed = True
        self.pending.clear()

    async def put(self, message: dict) -> bool:
        """Send now, or hold while the client's buffer is full; False once the client is too slow."""
        if self.closed or self.overflowed:
            return False
        if not self.paused and not self.pending:
            await self.send(message)
            return True
        self.pending.append(message)
        if len(self.pending) > self.max_pending:
            self.overflowed = True
            self.pending.clear()
            return False
        return True

    def drop(self) -> None:
        """Cut the connection of a client that cannot keep up (its close frame would wait behind the buffer)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abortConnection()


class LoopOnlyDispatch:
    """Consumer mixin: dispatch each message on the event loop, without Channels' database hop.

    Channels (4.2+) runs ``close_old_connections`` on Django's one database thread before *every*
    message it dispatches: for a viewer, every standings update. With hundreds of sockets that thread
    serializes all of them (measured with bench/bench_viewers.py: 200 viewers next to 300 riders never
    got past their handshake). These consumers touch the ORM only through ``database_sync_to_async``,
    which closes stale connections itself around each call, so the hop buys nothing here.
    """

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


T = TypeVar("T")


def per_event_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """``factory()`` made once per running event loop: what it makes holds futures or connections of that loop.

    Dropped with its loop (a test's loop, say), never shared between two.
    """
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    @functools.wraps(factory)
    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in made:
            made[loop] = factory()
        return made[loop]

    return get
