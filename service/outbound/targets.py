"""Where outbound webhooks may go: refusing server-side request forgery targets.

Operators register the URLs the service POSTs signed webhooks to, so a URL is a way to make the service
send requests into its own network (cloud metadata at 169.254.169.254, an admin port on loopback, a
database on a private subnet). Two checks keep it out:

* ``check_url``, when a subscription is made: http(s) only, no credentials, and no IP literal or
  ``localhost`` name that points inside. It does not resolve names: the answer could change by the time
  a delivery is made.
* ``guarded_transport``, at every connection: the name is resolved, every address is checked, and the
  socket is connected to a checked address, never to the name again. A resolver that answers with a
  public address first and a private one later (DNS rebinding) gains nothing.

``allow_private`` (``CHARGELINE_ALLOW_PRIVATE_WEBHOOK_TARGETS``) lifts the address rules, for tests and
for receivers on the same network; the http(s)-over-TCP rules hold regardless.

The client that uses the transport must set ``follow_redirects=False`` (a redirect is a new, unchecked
target) and ``trust_env=False`` (no proxies or certificate paths from the environment: a proxy would make
the connection, and the checks, somewhere else). httpx 0.28 already ignores proxy variables when a
transport is given, but it should not rest on that; the transport itself takes no proxy.

A refusal at connection time comes out of httpx as an ``httpx.ConnectError`` (so code that handles
``httpx.HTTPError`` keeps working) whose ``__cause__`` is a ``ConnectRefusedTarget``; ``refused_target``
finds it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import TypeAlias

import httpcore
import httpx

__all__ = [
    "ConnectRefusedTarget",
    "GuardedBackend",
    "IPAddress",
    "TargetRefused",
    "Unresolvable",
    "check_url",
    "forbidden_reason",
    "guarded_transport",
    "refused_target",
    "resolve_allowed",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_PRIVATE_SETTING = "CHARGELINE_ALLOW_PRIVATE_WEBHOOK_TARGETS"
MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})

# After httpx's IDNA encoding a host name is ASCII; anything outside this set cannot be resolved, and a
# percent sign or backslash in a host is a sign of a parser-confusion attempt rather than a typo.
_HOSTNAME = re.compile(r"[a-z0-9_.-]+", re.IGNORECASE)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IANA's special-purpose IPv4 registry, spelled out rather than left to ``is_private``/``is_global``:
# what those cover changed between 3.11 patch releases (3.11.7 calls 224.0.0.1 "global"). The first
# match names the reason, so the more specific blocks come first.
_IPV4_BLOCKS: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "'this network'"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),  # cloud metadata services live here
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT (shared)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("192.88.99.0/24"), "deprecated 6to4 relay"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

# Only 2000::/3 is allocated for global unicast; the forms that embed an IPv4 address are unwrapped
# before this table is reached, so the rest of ::/8 is simply reserved.
_IPV6_BLOCKS: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("fc00::/7"), "private (unique local)"),
    (_V6("ff00::/8"), "multicast"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("2001:2::/48"), "benchmarking"),
)
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_IPV4_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are the IPv4 address
_IPV4_COMPATIBLE = _V6("::/96")  # deprecated, but a stack that still honours it reaches the IPv4 address


class TargetRefused(ValueError):
    """A webhook URL or address the service will not send to; the message says why."""


class Unresolvable(TargetRefused):
    """The name resolves to nothing (yet): nothing to refuse, but nothing to connect to either."""


class ConnectRefusedTarget(httpcore.ConnectError, TargetRefused):
    """A refusal at connection time.

    An ``httpcore.ConnectError`` so that httpx maps it to ``httpx.ConnectError`` (with this as its
    ``__cause__``) like any other failed connection: httpx re-raises exceptions it does not know from
    httpcore unchanged, so a bare ``TargetRefused`` would escape handlers of ``httpx.HTTPError``. A
    ``TargetRefused`` so that ``refused_target`` tells it apart from a host that is merely down.
    """


def _a(reason: str) -> str:
    """``reason`` with its indefinite article, for messages: "a private", "an unspecified"."""
    return f"an {reason}" if reason[0].lower() in "aeiou" else f"a {reason}"


def _refusal(subject: str, reason: str) -> str:
    """The sentence that explains an address refusal and how to lift it."""
    return f"{subject} is {_a(reason)} address; set {ALLOW_PRIVATE_SETTING}=true to allow it"


def _embedded_reason(kind: str, embedded: ipaddress.IPv4Address) -> str | None:
    """The reason for an IPv6 address that carries an IPv4 one: the IPv4 address decides."""
    reason = forbidden_reason(embedded)
    return None if reason is None else f"{kind} {reason}"


def forbidden_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """None for a public (global unicast) address, else a short adjective saying what it is instead.

    IPv6 forms that lead to an IPv4 address (IPv4-mapped, NAT64, 6to4, IPv4-compatible) are judged by
    that IPv4 address: ``::ffff:127.0.0.1`` is loopback, ``64:ff9b::808:808`` is as public as 8.8.8.8.
    """
    if isinstance(address, ipaddress.IPv4Address):
        for network, reason in _IPV4_BLOCKS:
            if address in network:
                return reason
        # The stdlib's view as a backstop for blocks IANA adds later.
        return None if address.is_global else "non-global"

    unscoped = ipaddress.IPv6Address(address.packed)  # membership tests ignore the zone anyway
    if unscoped in _IPV4_MAPPED:
        return _embedded_reason("IPv4-mapped", ipaddress.IPv4Address(int(unscoped) & 0xFFFFFFFF))
    if unscoped in _NAT64:
        return _embedded_reason("NAT64", ipaddress.IPv4Address(int(unscoped) & 0xFFFFFFFF))
    if unscoped.sixtofour is not None:
        return _embedded_reason("6to4", unscoped.sixtofour)
    if unscoped in _IPV4_COMPATIBLE and int(unscoped) > 1:
        return _embedded_reason("IPv4-compatible", ipaddress.IPv4Address(int(unscoped))) or (
            "deprecated IPv4-compatible"
        )
    for network6, reason in _IPV6_BLOCKS:
        if unscoped in network6:
            return reason
    if unscoped not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None if unscoped.is_global else "non-global"


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host names by itself, including the forms only ``inet_aton`` accepts.

    Resolvers hand numeric hosts to ``inet_aton``, which reads "2130706433", "0x7f.1", "127.1" and
    "0177.0.0.1" as 127.0.0.1; ``ipaddress`` alone would take them for names.
    """
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def _shown(url: httpx.URL) -> str:
    """The URL for messages, without credentials or query string (either may hold secrets)."""
    port = "" if url.port is None else f":{url.port}"
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}{url.path}"


def check_url(url: str, *, allow_private: bool) -> str:
    """The normalised form of a webhook URL operators may register; ``TargetRefused`` if they may not.

    Syntax and literal addresses only, no DNS: names are checked where it counts, when connecting.
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are allowed")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        what = f"scheme {parsed.scheme!r}" if parsed.scheme else "a URL without a scheme"
        raise TargetRefused(f"{what} is not allowed: webhook URLs must be http:// or https://")
    if not parsed.host:
        raise TargetRefused("the URL has no host: webhook URLs look like https://host/path")
    # httpx drops an empty userinfo ("http://@host/"), so look at the authority as written too.
    authority = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if parsed.userinfo or "@" in authority:
        raise TargetRefused(
            f"{_shown(parsed)}: credentials (user:password@) are not allowed in webhook URLs; URLs end "
            "up in logs and error messages. Deliveries are authenticated by their signature"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise TargetRefused(f"{_shown(parsed)}: port {parsed.port} is not between 1 and 65535")

    host = parsed.host
    address: IPAddress | None
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetRefused(f"{_shown(parsed)}: {host!r} is not a valid IPv6 address") from None
    else:
        ascii_host = parsed.raw_host.decode("ascii")
        if not _HOSTNAME.fullmatch(ascii_host):
            raise TargetRefused(f"{_shown(parsed)}: {ascii_host!r} is not a valid host name")
        address = _ip_literal(ascii_host)

    if not allow_private:
        if address is not None:
            reason = forbidden_reason(address)
            if reason is not None:
                # Odd IPv4 spellings ("2130706433") get the usual one alongside, so the reason makes sense.
                odd = isinstance(address, ipaddress.IPv4Address) and host != str(address)
                subject = f"{host} ({address})" if odd else host
                raise TargetRefused(f"{_shown(parsed)}: {_refusal(subject, reason)}")
        else:
            name = host.rstrip(".")  # "localhost." is the same name, fully qualified
            if name == "localhost" or name.endswith(".localhost"):
                raise TargetRefused(
                    f"{_shown(parsed)}: {host} names this machine (RFC 6761); "
                    f"set {ALLOW_PRIVATE_SETTING}=true to allow it"
                )

    normalised = str(parsed)
    if len(normalised) > MAX_URL_LENGTH:  # percent-encoding can lengthen it
        raise TargetRefused(
            f"the URL is {len(normalised)} characters long once encoded; at most {MAX_URL_LENGTH}"
        )
    return normalised


async def resolve_allowed(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, once each.

    ``TargetRefused`` if it does not resolve, or if any address is not public (unless
    ``allow_private``): a name with one private address among public ones is refused outright rather
    than filtered, because it is pointed at the inside on purpose.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unresolvable(f"{host} does not resolve ({exc.strerror})") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise Unresolvable(f"{host} does not resolve (no addresses)")
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text)
            reason = forbidden_reason(address)
            if reason is not None:
                subject = host if host == text else f"{host} resolves to {text}, which"
                raise TargetRefused(_refusal(subject, reason))
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses ``resolve_allowed`` let through.

    The connection is made to the checked IP address, not the name, so the name is resolved exactly
    once per connection and a second, different answer is never used. TLS is unaffected: httpcore's
    ``AsyncHTTPConnection._connect`` (httpcore 1.0.9, ``_async/connection.py``) calls ``start_tls`` with
    ``server_hostname=sni_hostname or origin.host``, the URL's host and not the host given to
    ``connect_tcp``, so SNI and certificate verification still use the name.

    Refusals are raised as ``ConnectRefusedTarget``. Unix sockets are refused always: webhooks go over
    TCP, and ``allow_private`` is about addresses, not local files.

    Resolution goes through the running asyncio loop, so this backend is for asyncio (uvloop included),
    not trio.
    """

    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allow_private = allow_private
        # AnyIOBackend is what httpcore's (private) AutoBackend picks under asyncio.
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface passes the connect timeout
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        # One budget for resolving and connecting, as in anyio's own connect_tcp.
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await resolve_allowed(host, port, allow_private=self._allow_private)
        except Unresolvable as exc:
            # Not a refusal: an ordinary failure to connect, retried (the name may resolve later).
            raise httpcore.ConnectError(str(exc)) from exc
        except TargetRefused as exc:
            raise ConnectRefusedTarget(str(exc)) from exc
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: resolving took longer than {timeout}s") from None

        failures: list[str] = []
        last: BaseException | None = None
        for address in addresses:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"{host}: connecting took longer than {timeout}s")
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, OSError) as exc:
                # Another address of the same name may answer (IPv6 listed first, server on IPv4 only).
                failures.append(f"{address}: {str(exc) or type(exc).__name__}")
                last = exc
        raise httpcore.ConnectError(
            f"{host}:{port}: no address accepted the connection ({'; '.join(failures)})"
        ) from last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ConnectRefusedTarget(f"unix socket {path}: webhooks are only sent over TCP")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool rebuilt on a ``GuardedBackend``.

    httpx 0.28's ``AsyncHTTPTransport`` takes no network backend, but all it does with a request is map
    it to httpcore, hand it to ``self._pool`` and map httpcore's errors back. Replacing the pool keeps
    that mapping (a private helper of httpx otherwise) and costs one unused pool object: pools open no
    sockets until a request arrives.
    """

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, http1=True, http2=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            # The same context httpx builds by default: certifi's roots, hostname checking on.
            # trust_env=False: SSL_CERT_FILE/SSL_CERT_DIR do not change whom webhooks trust.
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            # retries stay at httpcore's 0: a refusal is a ConnectError, and would be retried as one.
            network_backend=GuardedBackend(allow_private=allow_private),
        )


def guarded_transport(*, allow_private: bool, max_connections: int = 100) -> httpx.AsyncBaseTransport:
    """An httpx transport that connects over TCP only, and only to addresses ``resolve_allowed`` passes.

    Pool limits mirror httpx's defaults (at most 20 idle connections, kept 5 s).
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(20, max_connections),
        keepalive_expiry=5.0,
    )
    return _GuardedTransport(allow_private=allow_private, limits=limits)


def refused_target(exc: BaseException) -> TargetRefused | None:
    """The refusal behind an exception from httpx (or raised directly), or None for other failures.

    httpx raises ``httpx.ConnectError(...) from`` the httpcore error, so the refusal is a ``__cause__``.
    Only explicit causes are followed: an implicit ``__context__`` is whatever was being handled at
    the time, which says nothing about why this failure happened.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TargetRefused):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None
