"""The test CA: its certificate serves TLS on the loopback names with a client certificate, a
client that trusts another CA is refused, and the key is readable by its owner only."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from sessiond.cluster.tls import TestPki, make_test_pki


def server_context(pki: TestPki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_file)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(pki: TestPki, ca_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    return context


async def handshake(pki: TestPki, ca_file: Path, host: str) -> bytes:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, host, 0, ssl=server_context(pki))
    port = server.sockets[0].getsockname()[1]
    async with server:
        for name in ("localhost", host):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=client_context(pki, ca_file), server_hostname=name
            )
            writer.write(b"ping\n")
            line = await reader.readline()
            writer.close()
        return line


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_the_certificate_serves_and_authenticates_on_loopback(
    tmp_path: Path, host: str
) -> None:
    pki = make_test_pki(tmp_path)
    assert await asyncio.wait_for(handshake(pki, pki.ca_file, host), 10) == b"ping\n"


async def test_a_client_trusting_another_ca_is_refused(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "one")
    other = make_test_pki(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(handshake(pki, other.ca_file, "127.0.0.1"), 10)


def test_the_key_is_private_and_a_second_call_makes_a_new_ca(tmp_path: Path) -> None:
    first = make_test_pki(tmp_path)
    first_ca = first.ca_file.read_bytes()
    second = make_test_pki(tmp_path)
    assert stat.S_IMODE(second.key_file.stat().st_mode) == 0o600
    assert second.ca_file.read_bytes() != first_ca
