"""A TLS-terminating TCP proxy: TLS (optionally demanding a client certificate) on the
outside, the plain server on the inside. Temporal's dev server has no TLS of its own; in
front of it, this is what a Temporal cluster with mTLS looks like to a client; in front of
the API (HTTP/1.1), what Google's push notifications reach at DIRHOOK_PUBLIC_URL."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


class TLSProxy:
    def __init__(self, upstream: str, context: ssl.SSLContext, alpn: list[str] | None = None):
        self.upstream_host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        context.set_alpn_protocols(["h2"] if alpn is None else alpn)  # gRPC is HTTP/2
        self.context = context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        # A failed handshake (no client certificate, plain text) never reaches _accept.
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.context)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
