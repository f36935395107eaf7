"""An asyncio TCP proxy in front of one broker port: cut, refuse, delay, resume.

::

    async with TcpProxy(upstream_port=broker_port) as proxy:   # listens on proxy.port
        proxy.cut()              # abort every open connection (both sides see a reset)
        await proxy.refuse()     # stop listening: new connections are refused
        proxy.latency_s = 0.2    # each chunk is forwarded 200 ms after it arrived
        await proxy.resume()     # listen again on the same port, no added latency

Kafka and proxies: a client asks the bootstrap address for metadata and then connects to
the address each broker *advertises*, so a proxy only sees a client's traffic if the broker
advertises the proxy's port. For a dedicated local broker, start the proxy first (it binds
its port at once; connections made before the broker is up are closed) and then start the
broker with ``cluster.up(..., advertised_ports=[proxy.port])``: it listens on its own port
and tells every client to come through the proxy. Its controller traffic (KRaft) does not go
through the proxy. See ``tests/chaos/test_scenarios.py`` (scenario 6).

Latency keeps throughput: chunks are queued with their due time and written when due, so a
delay of ``d`` adds ``d`` to every round trip without serialising the stream. Cancellation
is never swallowed; connection errors end only the connection they happen on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType

_LOG = logging.getLogger("chaos.proxy")
CHUNK = 65_536


class TcpProxy:
    """Forwards ``listen_host:port`` to ``upstream_host:upstream_port``. Async context manager."""

    def __init__(
        self,
        *,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.port = listen_port
        self.latency_s = 0.0
        self.accepted = 0
        self.cuts = 0
        self.bytes_forwarded = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.refuse()
        self.cut()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    @property
    def listening(self) -> bool:
        """Whether new connections are accepted."""
        return self._server is not None

    @property
    def open_connections(self) -> int:
        """Client connections currently proxied."""
        return len(self._connections)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.listen_host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> int:
        """Abort every open connection (a reset for both ends); how many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        for task in list(self._connections):
            task.cancel()
        self.cuts += len(writers) // 2
        return len(writers) // 2

    async def refuse(self) -> None:
        """Stop listening: connecting to :attr:`port` is refused until :meth:`resume`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def resume(self) -> None:
        """Accept connections again (same port) and forward without added latency."""
        self.latency_s = 0.0
        if self._server is None:
            await self._listen()

    async def partition(self) -> int:
        """Refuse new connections and cut the open ones: the broker is unreachable."""
        await self.refuse()
        return self.cut()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.accepted += 1
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_w)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(client_r, upstream_w))
                group.create_task(self._pipe(upstream_r, client_w))
        except* (ConnectionError, OSError) as errors:
            _LOG.debug("proxied connection ended: %s", errors.exceptions[0])
        finally:
            self._connections.discard(task)
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``latency_s`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the injected latency itself
                writer.write(data)
                await writer.drain()
                self.bytes_forwarded += len(data)

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((time.monotonic() + self.latency_s, data))
                if not data:
                    break
            await sender
        finally:
            if not sender.done():
                sender.cancel()
                await asyncio.wait([sender])  # our own cancellation still propagates
        # EOF from this side: close the other one too, so neither end hangs half-open.
        writer.transport.abort()
