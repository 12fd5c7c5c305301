"""A loopback TCP proxy that injects link faults between two "datacenters".

Each accepted connection is piped to the upstream address. Faults, changeable at any
time: `latency` (seconds added to every chunk, each direction), `jitter` (up to that
many seconds more, uniformly random per chunk; order is kept), `bandwidth` (bytes per
second each direction, shared by all connections; 0: no cap), `blackhole` (bytes are
held, connections stay open: a silent WAN partition), `drop_replies` (only the
upstream -> client direction is held: requests arrive, answers never do), `reset()`
(close every connection now), `clear()` (every fault off). In-process:
`FaultProxy(...).start()` runs it on its own event-loop thread. As a process:
`python -m jepsen.faultproxy LISTEN UPSTREAM --control PORT`, then send lines like
`latency 0.05`, `jitter 0.02`, `bandwidth 100000`, `blackhole 1`, `drop_replies 0`,
`reset`, `clear` to the control port (one command per connection; the answer is `ok`
or an error).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading

_CHUNK = 65536


class FaultProxy:
    def __init__(self, listen_port: int, upstream: str, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port = host, listen_port
        self.upstream_host, _, port = upstream.rpartition(":")
        self.upstream_port = int(port)
        self.latency = 0.0
        self.jitter = 0.0
        self.bandwidth = 0.0
        self._next_send = {False: 0.0, True: 0.0}   # per direction: when the cap allows more
        self.blackhole = False
        self.drop_replies = False
        self._open: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._flow = asyncio.Event()     # set while nothing is held (created in the loop)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen_port}"

    # --- controls (thread-safe) -----------------------------------------------------------
    def set(self, *, latency: float | None = None, blackhole: bool | None = None,
            drop_replies: bool | None = None, jitter: float | None = None,
            bandwidth: float | None = None) -> None:
        def apply():
            if latency is not None:
                self.latency = latency
            if jitter is not None:
                self.jitter = jitter
            if bandwidth is not None:
                self.bandwidth = bandwidth
                self._next_send = {False: 0.0, True: 0.0}
            if blackhole is not None:
                self.blackhole = blackhole
            if drop_replies is not None:
                self.drop_replies = drop_replies
            self._flow.set()       # wake held pipes; they re-check and hold again if needed
            self._flow = asyncio.Event()
        self._call(apply)

    def clear(self) -> None:
        """Every fault off (open connections stay)."""
        self.set(latency=0.0, jitter=0.0, bandwidth=0.0, blackhole=False, drop_replies=False)

    def reset(self) -> None:
        def close_all():
            for writer in list(self._open):
                writer.transport.abort()
        self._call(close_all)

    def _call(self, fn) -> None:
        if self._loop is None:
            fn()
        else:
            asyncio.run_coroutine_threadsafe(_as_coroutine(fn), self._loop).result(5)

    # --- running ------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Run on a daemon thread; returns once listening."""
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()
        threading.Thread(target=run, name="faultproxy", daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _shutdown(self) -> None:
        """Close the listener and end every connection's tasks, so none is left pending.
        Connections are aborted first, so their accept tasks end by themselves (asyncio
        logs a traceback for a cancelled one)."""
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(0.05)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        self._flow = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host,
                                                                 self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, reply=False),
                             self._pipe(up_reader, writer, reply=True),
                             return_exceptions=True)
        self._open -= {writer, up_writer}

    def _held(self, reply: bool) -> bool:
        return self.blackhole or (reply and self.drop_replies)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    reply: bool) -> None:
        """Read and write in two tasks: latency delays each chunk from its arrival, so it
        adds delay without capping bandwidth (a long link, not a slow one); the cap, when
        set, is a separate wait before each write."""
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read():
            while data := await reader.read(_CHUNK):
                delay = self.latency + (random.uniform(0, self.jitter) if self.jitter else 0)
                await queue.put((loop.time() + delay, data))
            await queue.put((0.0, b""))

        async def write():
            while True:
                due, data = await queue.get()
                if not data:
                    return
                while self._held(reply):
                    await self._flow.wait()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.bandwidth:
                    await self._paced(len(data), reply)
                writer.write(data)
                await writer.drain()
        try:
            await asyncio.gather(read(), write())
        finally:
            writer.transport.abort()

    async def _paced(self, size: int, reply: bool) -> None:
        """Wait until `size` more bytes would have crossed this direction's capped link
        (after what is queued before them): a chunk goes whole when it has."""
        now = asyncio.get_running_loop().time()
        done = max(now, self._next_send[reply]) + size / self.bandwidth
        self._next_send[reply] = done
        await asyncio.sleep(done - now)


async def _as_coroutine(fn):
    return fn()


async def _control(proxy: FaultProxy, reader, writer) -> None:
    words = (await reader.readline()).decode().split()
    try:
        if words == ["reset"]:
            proxy.reset()
        elif words == ["clear"]:
            proxy.clear()
        elif len(words) == 2 and words[0] in ("latency", "jitter", "bandwidth"):
            proxy.set(**{words[0]: float(words[1])})
        elif len(words) == 2 and words[0] in ("blackhole", "drop_replies"):
            proxy.set(**{words[0]: words[1] not in ("0", "off", "false")})
        else:
            raise ValueError(f"unknown command {' '.join(words)!r}")
        writer.write(b"ok\n")
    except ValueError as exc:
        writer.write(f"error: {exc}\n".encode())
    await writer.drain()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen", help="HOST:PORT to accept on")
    parser.add_argument("upstream", help="HOST:PORT to forward to")
    parser.add_argument("--control", type=int, required=True, help="control port (loopback)")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    proxy = FaultProxy(int(port), args.upstream, host)
    proxy.latency = args.latency

    async def run():
        await proxy._listen()
        await asyncio.start_server(lambda r, w: _control(proxy, r, w), "127.0.0.1",
                                   args.control)
        await asyncio.Event().wait()
    asyncio.run(run())


if __name__ == "__main__":
    main()
