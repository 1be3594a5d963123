"""Which targets /watch refuses: link-local and cloud-metadata addresses.

A chat user who may add checks must not make the worker fetch its cloud's instance metadata
(credentials live there: 169.254.169.254, fd00:ec2::254) and read the answer back through a
check's error or a `contains` probe. Checks from CHECKS are the operator's own and stay allowed;
CHECKS_ALLOW_PRIVATE=true allows these targets for /watch too. A name is resolved when the check
is added and every address it resolves to is judged.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

# Link-local (where clouds put metadata) and the metadata addresses outside it.
_REFUSED = [
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
]
_REFUSED_NAMES = ("metadata.google.internal", "metadata", "instance-data")


def _hosts(options: dict) -> list[str]:
    hosts = [str(options["host"])] if options.get("host") else []
    urls = [options.get("url")] + list(_split(options.get("references")))
    for url in urls:
        if url:
            host = urlsplit(str(url)).hostname
            if host:
                hosts.append(host)
    return hosts


def _split(refs) -> list[str]:
    if not refs:
        return []
    if isinstance(refs, str):
        return [r.strip() for r in refs.split(",") if r.strip()]
    return [str(r) for r in refs]


def _addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return []  # unresolvable now: the check will say so when it runs
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return found


def refused_target(options: dict) -> str | None:
    """Why /watch refuses this check's target (a sentence), or None when it may be watched."""
    for host in _hosts(options):
        if host.lower().rstrip(".") in _REFUSED_NAMES:
            return _sentence(host)
        for address in _addresses(host):
            mapped = getattr(address, "ipv4_mapped", None) or address
            if any(mapped in net for net in _REFUSED if net.version == mapped.version):
                return _sentence(host if str(address) == host else f"{host} ({address})")
    return None


def _sentence(what: str) -> str:
    return (
        f"{what} is a link-local or cloud-metadata address, which /watch does not check; "
        "put it in CHECKS, or set CHECKS_ALLOW_PRIVATE=true"
    )
