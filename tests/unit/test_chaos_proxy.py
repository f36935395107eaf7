"""The chaos TCP proxy forwards, cuts, refuses, delays and resumes (against a local echo server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from chaos.proxy import TcpProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def _round_trip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()


async def test_forwards_both_ways(echo_port: int) -> None:
    async with TcpProxy(upstream_port=echo_port) as proxy:
        assert proxy.port != echo_port
        assert await _round_trip(proxy.port, b"hello kafka") == b"hello kafka"
        assert proxy.accepted == 1
        assert proxy.bytes_forwarded == 2 * len(b"hello kafka")


async def test_cut_resets_open_connections(echo_port: int) -> None:
    async with TcpProxy(upstream_port=echo_port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        assert proxy.cut() == 1
        assert await asyncio.wait_for(reader.read(10), 5) == b""  # the connection is gone
        writer.close()
        assert await _round_trip(proxy.port) == b"ping"  # new connections still work


async def test_refuse_then_resume_on_the_same_port(echo_port: int) -> None:
    async with TcpProxy(upstream_port=echo_port) as proxy:
        port = proxy.port
        await proxy.partition()
        assert not proxy.listening
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await proxy.resume()
        assert proxy.port == port
        assert await _round_trip(port) == b"ping"


async def test_latency_is_added_to_each_round_trip(echo_port: int) -> None:
    async with TcpProxy(upstream_port=echo_port) as proxy:
        proxy.latency_s = 0.15
        began = time.monotonic()
        assert await _round_trip(proxy.port) == b"ping"
        assert time.monotonic() - began >= 0.3  # 0.15 s each way
        await proxy.resume()
        assert proxy.latency_s == 0.0


async def test_connections_are_closed_when_the_upstream_is_down() -> None:
    async with TcpProxy(upstream_port=1) as proxy:  # nothing listens on port 1
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(10), 5) == b""
        writer.close()
