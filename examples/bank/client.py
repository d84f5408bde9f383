"""Watch the bank's live feed with an access token; print each event and how the feed ends.

::

    .venv/bin/python -m examples.bank.client "$A1" "$ACCESS"

A WebSocket client in the standard library only (RFC 6455: text frames, no extensions): the
example needs no extra dependency, and the token goes in the ``Authorization`` header, which a
browser could not set (browsers reach a backend through their own server). The tests use it
too (:class:`Feed`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Closed", "Feed", "HandshakeRefused", "main"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Closed:
    """The server closed the WebSocket: its close code (4401: the session was revoked)."""

    code: int | None
    reason: str


class HandshakeRefused(Exception):
    """The server did not switch protocols (e.g. 403: the token was refused at the start)."""


class Feed:
    """One open WebSocket: :meth:`receive` returns each text message, then a :class:`Closed`."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self._sock = sock
        self._buffer = bytearray(buffered)
        self.closed: Closed | None = None

    @classmethod
    def open(
        cls, base_url: str, token: str, path: str = "/ws/transactions", timeout: float = 5.0
    ) -> Feed:
        """Connect to ``base_url`` (``http://host:port``) and open ``path`` with the token."""
        url = urlsplit(base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        key = base64.b64encode(os.urandom(16))
        sock = socket.create_connection((host, port), timeout=timeout)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        status, *fields = head.decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (f.partition(":") for f in fields)
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())
        if status.split(" ")[1:2] != ["101"] or headers.get("sec-websocket-accept") != (
            accept.decode()
        ):
            sock.close()
            raise HandshakeRefused(status or "connection closed during the handshake")
        return cls(sock, rest)

    def receive(self, timeout: float | None = None) -> str | Closed:
        """The next text message, or :class:`Closed` once the server closed the WebSocket;
        ``TimeoutError`` if nothing came within ``timeout`` seconds."""
        if self.closed is not None:
            return self.closed
        deadline = None if timeout is None else time.monotonic() + timeout
        message = bytearray()
        while True:
            opcode, fin, payload = self._frame(deadline)
            if opcode == _PING:
                self._send(_PONG, payload)
            elif opcode == _CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.closed = Closed(code, payload[2:].decode(errors="replace"))
                self._send(_CLOSE, payload[:2])  # the closing handshake: echo the code
                self._sock.close()
                return self.closed
            elif opcode != _PONG:
                message += payload
                if fin:
                    return message.decode()

    def close(self, code: int = 1000) -> None:
        """Leave: send a close frame (if still open) and drop the connection."""
        if self.closed is None:
            self.closed = Closed(code, "client left")
            with contextlib.suppress(OSError):  # the server may be gone already
                self._send(_CLOSE, struct.pack("!H", code))
        self._sock.close()

    def _frame(self, deadline: float | None) -> tuple[int, bool, bytes]:
        while (frame := self._parse()) is None:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no message in time")
                self._sock.settimeout(left)
            else:
                self._sock.settimeout(None)
            chunk = self._sock.recv(65536)  # raises TimeoutError at the deadline
            if not chunk:
                return _CLOSE, True, b""  # dropped without a close frame
            self._buffer += chunk
        return frame

    def _parse(self) -> tuple[int, bool, bytes] | None:
        """One whole frame from the buffer (consumed), or ``None`` if it is not all there."""
        buf = self._buffer
        if len(buf) < 2:
            return None
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        length, start = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, start = struct.unpack("!H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, start = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < start + length:  # server frames are never masked
            return None
        payload = bytes(buf[start : start + length])
        del buf[: start + length]
        return opcode, fin, payload

    def _send(self, opcode: int, payload: bytes) -> None:
        """A control frame (payload under 126 bytes): client frames are always masked (RFC 6455
        section 5.3)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the bank app's base URL, e.g. $A1")
    parser.add_argument("token", help="an access token with the accounts:read scope")
    args = parser.parse_args(argv)
    try:
        feed = Feed.open(args.url, args.token)
    except HandshakeRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"connected to {args.url}/ws/transactions", flush=True)
    try:
        while isinstance(message := feed.receive(), str):
            print(message, flush=True)
    except KeyboardInterrupt:
        feed.close()
        print("left (1000)")
        return 0
    print(f"closed by the server: {message.code} {message.reason}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
