"""A loopback Kafka-protocol proxy in front of tansu that makes its ApiVersions answer readable by librdkafka.

Why it exists (measured here, DESIGN.md and README "Which Kafka clients"):
tansu 0.6.0 answers ApiVersions v3 with all four top-level tagged fields of
KIP-584/KIP-866 written out at their *default* values (SupportedFeatures = [],
FinalizedFeaturesEpoch = -1, FinalizedFeatures = [], ZkMigrationReady = false).
The protocol allows that, but Apache Kafka never does it: its generated
serialisers only write a tagged field whose value differs from the default
(KIP-482).  librdkafka before 2.2.0 (confluentinc/librdkafka#4278) skips one
byte too few per tagged field; with one tag (what Kafka sends) the slip lands
harmlessly at the end of the message, with tansu's four it reads a length out of
the middle of the next tag and fails with "Read underflow: probably due to
broker version < 0.10".  Debian 12's kcat 1.7.1 is built on librdkafka 2.0.2,
so it could not talk to the embedded broker at all.

What the proxy does: it forwards bytes both ways unchanged, in the chunks
they arrive in, reading only each frame's size and first header bytes, except
for responses to ApiVersions v3 and later, which it holds back whole and
rewrites without the top-level tagged fields that hold their default value --
i.e. it sends the bytes Apache Kafka would send for a broker with no features.
An ApiVersions answer it cannot parse it forwards untouched.  It runs as its own process (``python -m
streamer.kafka_shim --listen HOST:PORT --target HOST:PORT``), started and
killed together with tansu by :class:`streamer.broker.EmbeddedBroker`.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import struct
import sys
from typing import Awaitable, Callable, Optional

log = logging.getLogger("streamer.kafka_shim")

API_VERSIONS = 18
_SIZE = struct.Struct(">i")
_REQ_HEAD = struct.Struct(">ihhi")  # size, api_key, api_version, correlation_id
MAX_FRAME = 200 * 1024 * 1024  # sanity bound; a larger size means a broken stream

# ApiVersionsResponse v3+ top-level tagged fields and the bytes of their default values.
_DEFAULT_TAGS: dict[int, bytes] = {
    0: b"\x01",  # SupportedFeatures: empty compact array
    1: b"\xff" * 8,  # FinalizedFeaturesEpoch: int64 -1
    2: b"\x01",  # FinalizedFeatures: empty compact array
    3: b"\x00",  # ZkMigrationReady: false
}


def _uvarint(buf: bytes, i: int) -> tuple[int, int]:
    """Decode an unsigned varint at ``i``; returns (value, next index)."""
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 35:
            raise ValueError("varint too long")


def _put_uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _skip_tags(buf: bytes, i: int) -> int:
    n, i = _uvarint(buf, i)
    for _ in range(n):
        _, i = _uvarint(buf, i)
        size, i = _uvarint(buf, i)
        i += size
    return i


def parse_tags(buf: bytes, i: int) -> tuple[list[tuple[int, bytes]], int]:
    """The tagged-field section at ``i`` as [(tag, value bytes)], and the index after it."""
    n, i = _uvarint(buf, i)
    tags = []
    for _ in range(n):
        tag, i = _uvarint(buf, i)
        size, i = _uvarint(buf, i)
        if i + size > len(buf):
            raise ValueError("tagged field past the end")
        tags.append((tag, bytes(buf[i:i + size])))
        i += size
    return tags, i


def rewrite_api_versions(frame: bytes) -> bytes:
    """An ApiVersionsResponse v3+ frame (header v0 + body, no size prefix) without default-valued tags.

    Raises ``ValueError`` when the frame is not a well-formed v3 response;
    returns the frame unchanged when no tag holds its default value.
    """
    try:
        i = 4 + 2  # correlation_id, error_code
        n, i = _uvarint(frame, i)
        for _ in range(max(n - 1, 0)):
            i += 6  # api_key, min_version, max_version
            i = _skip_tags(frame, i)
        i += 4  # throttle_time_ms
        start = i
        tags, end = parse_tags(frame, i)
    except IndexError:
        raise ValueError("truncated ApiVersions response") from None
    if end != len(frame):
        raise ValueError(f"ApiVersions response has {len(frame) - end} trailing bytes")
    kept = [(t, v) for t, v in tags if _DEFAULT_TAGS.get(t) != v]
    if len(kept) == len(tags):
        return frame
    out = bytearray(frame[:start])
    out += _put_uvarint(len(kept))
    for t, v in kept:
        out += _put_uvarint(t) + _put_uvarint(len(v)) + v
    return bytes(out)


CHUNK = 256 * 1024
Rewrite = Callable[[bytes], bytes]


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head_len: int,
                  on_head: Callable[[bytes], Optional[Rewrite]]) -> None:
    """Copy a Kafka byte stream chunk by chunk, looking only at the first ``head_len`` bytes of each frame.

    ``on_head(head)`` sees every frame's size prefix and first header bytes; when
    it returns a function, that frame is held back whole and replaced by what
    the function returns (size prefix recomputed).  Every other byte is passed on
    in the chunks it arrived in, so the cost is a few operations per frame.
    Returns at end of stream; raises ``ValueError`` on an impossible frame size.
    """
    carry = b""  # the start of a frame head split across reads (held back, never half-sent)
    remaining = 0  # bytes of the current frame still to pass through
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        buf = carry + data if carry else data
        carry = b""
        n = len(buf)
        pos = out_from = 0
        while pos < n:
            if remaining:
                step = min(remaining, n - pos)
                pos += step
                remaining -= step
                continue
            if n - pos < head_len:
                carry = buf[pos:]
                break
            head = buf[pos:pos + head_len]
            (size,) = _SIZE.unpack_from(head)
            if size < head_len - 4 or size > MAX_FRAME:
                raise ValueError(f"bad frame size {size}")
            rewrite = on_head(head)
            if rewrite is None:
                remaining = size + 4 - head_len
                pos += head_len
                continue
            if pos > out_from:
                writer.write(buf[out_from:pos])
            end = pos + 4 + size
            frame = buf[pos + 4:end]
            if len(frame) < size:
                frame += await reader.readexactly(size - len(frame))
            try:
                new = rewrite(frame)
            except ValueError as e:  # not what we expected: pass it on untouched
                log.warning("frame left as is: %s", e)
                new = frame
            writer.write(_SIZE.pack(len(new)) + new)
            pos = out_from = min(end, n)
        stop = n - len(carry)
        if stop > out_from:
            writer.write(buf[out_from:stop] if out_from or stop < n else buf)
        await writer.drain()


class Shim:
    """The proxy: ``listen`` (host, port) forwards to ``target`` (host, port)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen = listen
        self.target = target
        self.rewritten = 0
        self.server: Optional[asyncio.base_events.Server] = None

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            breader, bwriter = await asyncio.open_connection(*self.target)
        except OSError as e:  # broker down: behave like it (connection closed at once)
            log.debug("upstream %s:%s refused: %s", *self.target, e)
            cwriter.close()
            return
        for w in (cwriter, bwriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending: set[int] = set()  # correlation ids of ApiVersions v3+ requests in flight

        def request_head(head: bytes) -> None:
            _, key, version, corr = _REQ_HEAD.unpack(head)
            if key == API_VERSIONS and version >= 3:
                pending.add(corr)
            return None

        def response_head(head: bytes) -> Optional[Rewrite]:
            if pending:
                (corr,) = _SIZE.unpack_from(head, 4)
                if corr in pending:
                    pending.discard(corr)
                    return self._rewrite
            return None

        up = asyncio.ensure_future(self._pump(forward(creader, bwriter, _REQ_HEAD.size, request_head), "client"))
        down = asyncio.ensure_future(self._pump(forward(breader, cwriter, 8, response_head), "broker"))
        _, still = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in still:
            t.cancel()
        for w in (cwriter, bwriter):
            w.close()

    def _rewrite(self, frame: bytes) -> bytes:
        new = rewrite_api_versions(frame)
        if new is not frame:
            self.rewritten += 1
        return new

    @staticmethod
    async def _pump(coro: Awaitable[None], side: str) -> None:
        try:
            await coro
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            log.debug("%s side closed: %s", side, e)

    async def serve(self, ready: Optional[asyncio.Event] = None) -> None:
        self.server = await asyncio.start_server(self._handle, *self.listen, reuse_address=True)
        if ready is not None:
            ready.set()
        async with self.server:
            await self.server.serve_forever()


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the proxy until SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, type=_hostport, help="HOST:PORT clients connect to")
    ap.add_argument("--target", required=True, type=_hostport, help="HOST:PORT of tansu")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s kafka_shim %(levelname)s %(message)s")
    shim = Shim(args.listen, args.target)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(shim.serve())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
