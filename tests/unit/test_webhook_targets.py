"""Webhook targets: which addresses and URLs are refused, and that the refusal holds when connecting.

Operators choose where the service sends requests, so these tests pin the server-side request forgery
guard: the address table, the URL rules at subscription time, and a real HTTP round trip through the
guarded transport to a receiver on 127.0.0.1 that must see no connection at all when it is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpcore
import httpx
import pytest

from service.outbound.targets import (
    ConnectRefusedTarget,
    GuardedBackend,
    TargetRefused,
    Unresolvable,
    check_url,
    forbidden_reason,
    guarded_transport,
    refused_target,
    resolve_allowed,
)

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
SocketAddress = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]  # as getaddrinfo returns it


@dataclass
class Receiver:
    """A local HTTP receiver that answers every request with 204 and counts connections."""

    port: int
    connections: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(port=0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    await reader.readexactly(int(value))
            writer.write(NO_CONTENT)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def client(*, allow_private: bool) -> httpx.AsyncClient:
    """The client as the sender builds it: no redirects, nothing from the environment."""
    return httpx.AsyncClient(
        transport=guarded_transport(allow_private=allow_private),
        follow_redirects=False,
        trust_env=False,
        timeout=5.0,
    )


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT (shared)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private (unique local)"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("64:ff9b::7f00:1", "NAT64 loopback"),
        ("2002:a00:1::", "6to4 private"),
        ("::", "unspecified"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed_also_when_wrapped_in_ipv6(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hooks", "scheme 'ftp' is not allowed"),
        ("http:///hooks", "no host"),
        ("https://user:secret@example.com/hooks", "credentials"),
        ("https://@example.com/hooks", "credentials"),
        ("http://example.com:0/hooks", "port 0"),
        ("http://example.com:70000/hooks", "port 70000"),
        ("https://example.com/" + "a" * 2048, "at most 2048"),
        ("http://127.0.0.1/hooks", "127.0.0.1 is a loopback address"),
        ("http://[::1]:8080/x", "::1 is a loopback address"),
        ("http://2130706433/", "2130706433 (127.0.0.1) is a loopback address"),
        ("http://0x7f.1/", "0x7f.1 (127.0.0.1) is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://localhost/", "names this machine"),
        ("http://foo.localhost", "names this machine"),
        ("http://localhost./", "names this machine"),
    ],
)
def test_check_url_refuses_ssrf_targets_and_says_why(url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=re.escape(why)):
        check_url(url, allow_private=False)


def test_address_refusal_tells_the_operator_how_to_allow_it() -> None:
    with pytest.raises(TargetRefused) as refused:
        check_url("http://10.0.0.5/x", allow_private=False)
    assert str(refused.value) == (
        "http://10.0.0.5/x: 10.0.0.5 is a private address; "
        "set CHARGELINE_ALLOW_PRIVATE_WEBHOOK_TARGETS=true to allow it"
    )


def test_refusal_messages_do_not_repeat_credentials_or_query_strings() -> None:
    with pytest.raises(TargetRefused) as refused:
        check_url("https://user:hunter2@example.com/hooks?token=s3cret", allow_private=False)
    assert "hunter2" not in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_check_url_accepts_and_normalises_a_public_https_url() -> None:
    assert check_url("https://example.com/hooks", allow_private=False) == "https://example.com/hooks"
    assert check_url("HTTPS://Example.COM/a b", allow_private=False) == "https://example.com/a%20b"


def test_check_url_leaves_hostnames_to_the_connection_check() -> None:
    # No DNS at subscription time: a name is accepted whatever it resolves to today.
    assert (
        check_url("https://hooks.example.invalid/x", allow_private=False) == "https://hooks.example.invalid/x"
    )


def test_allow_private_lifts_the_address_rules_but_not_the_url_rules() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_private=True) == "http://127.0.0.1:8080/x"
    assert check_url("http://localhost/", allow_private=True) == "http://localhost/"
    with pytest.raises(TargetRefused, match="scheme 'ftp'"):
        check_url("ftp://127.0.0.1/x", allow_private=True)
    with pytest.raises(TargetRefused, match="credentials"):
        check_url("http://user:pw@127.0.0.1/x", allow_private=True)


async def test_resolve_allowed_refuses_a_name_that_resolves_to_loopback() -> None:
    with pytest.raises(TargetRefused, match=r"localhost resolves to .*, which is a loopback address"):
        await resolve_allowed("localhost", 80, allow_private=False)


async def test_resolve_allowed_returns_loopback_addresses_when_private_targets_are_allowed() -> None:
    addresses = await resolve_allowed("localhost", 80, allow_private=True)
    assert addresses
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """An inner backend that records what it was asked to connect to and connects nowhere."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return httpcore.AsyncNetworkStream()


async def test_backend_connects_to_the_checked_address_not_the_name() -> None:
    inner = RecordingBackend()
    await GuardedBackend(allow_private=True, inner=inner).connect_tcp("localhost", 80)
    assert inner.hosts
    assert all(ipaddress.ip_address(host).is_loopback for host in inner.hosts)


async def test_unix_sockets_are_refused_even_when_private_targets_are_allowed() -> None:
    with pytest.raises(TargetRefused, match="only sent over TCP"):
        await GuardedBackend(allow_private=True).connect_unix_socket("/run/docker.sock")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_transport_refuses_loopback_before_connecting(receiver: Receiver, host: str) -> None:
    async with client(allow_private=False) as http:
        with pytest.raises(httpx.ConnectError) as failed:
            await http.post(f"http://{host}:{receiver.port}/", content=b"{}")
    refusal = refused_target(failed.value)
    assert isinstance(refusal, ConnectRefusedTarget)
    assert "loopback" in str(failed.value)
    assert receiver.connections == 0


async def test_transport_delivers_to_loopback_when_private_targets_are_allowed(receiver: Receiver) -> None:
    async with client(allow_private=True) as http:
        response = await http.post(f"http://localhost:{receiver.port}/", content=b"{}")
    assert response.status_code == 204
    assert receiver.connections == 1


async def test_an_ordinary_connection_failure_is_not_reported_as_a_refusal() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(allow_private=True) as http:
        with pytest.raises(httpx.ConnectError) as failed:
            await http.post(f"http://127.0.0.1:{port}/", content=b"{}")
    assert refused_target(failed.value) is None


async def test_a_name_that_does_not_resolve_is_a_retryable_connection_failure_not_a_refusal() -> None:
    # ".invalid" never resolves (RFC 2606), with or without a network.
    with pytest.raises(Unresolvable):
        await resolve_allowed("nothing-here.invalid", 443, allow_private=False)
    async with client(allow_private=False) as http:
        with pytest.raises(httpx.ConnectError) as failed:
            await http.post("https://nothing-here.invalid/hooks", content=b"{}")
    assert refused_target(failed.value) is None
    assert "does not resolve" in str(failed.value)


async def test_a_name_that_passed_check_url_is_refused_when_it_resolves_inside(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is checked where it is resolved, and the connection uses that answer.

    The event loop's resolver is replaced in this test only, because a name whose answer changes
    between lookups cannot be had for real here. It answers the first lookup of the name (counted
    afresh for each delivery) with 127.0.0.1 and fails any later one, so the delivery that succeeds
    with private targets allowed proves the socket went to the address that was checked, not to a
    second answer for the name.
    """
    name = "hooks.rebinding.invalid"
    url = check_url(f"http://{name}:{receiver.port}/", allow_private=False)  # nothing to see yet
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    lookups: list[str] = []

    async def rebinding_getaddrinfo(
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Sequence[tuple[socket.AddressFamily, socket.SocketKind, int, str, SocketAddress]]:
        if host != name:
            return await real_getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
        lookups.append(name)
        if len(lookups) > 1:  # a rebinding resolver changes its answer after the first lookup
            raise socket.gaierror(socket.EAI_NONAME, "answer changed")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", receiver.port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding_getaddrinfo)

    async with client(allow_private=False) as http:
        with pytest.raises(httpx.ConnectError) as failed:
            await http.post(url, content=b"{}")
    assert refused_target(failed.value) is not None
    assert f"{name} resolves to 127.0.0.1, which is a loopback address" in str(failed.value)
    assert receiver.connections == 0

    lookups.clear()
    async with client(allow_private=True) as http:
        response = await http.post(url, content=b"{}")
    assert response.status_code == 204
    assert lookups == [name]
    assert receiver.connections == 1
