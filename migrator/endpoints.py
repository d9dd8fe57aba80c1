"""Loopback checks: the sandbox and everything pointed at it refuse endpoints that are not loopback."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from migrator.errors import UnsafeEndpointError


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    if "://" not in url:
        url = "http://" + url  # STORAGE_EMULATOR_HOST may be host:port
    host = urlsplit(url).hostname
    return host is not None and is_loopback_host(host)


def require_loopback(url: str | None, what: str) -> str:
    """Return ``url`` if it is a loopback endpoint; otherwise refuse."""
    if not url:
        raise UnsafeEndpointError(f"{what}: no endpoint set; the sandbox only talks to loopback endpoints")
    if not is_loopback_url(url):
        raise UnsafeEndpointError(f"{what}: refusing non-loopback endpoint {url!r}")
    return url
