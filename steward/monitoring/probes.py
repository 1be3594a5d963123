"""The tls and dns kinds: a certificate's days left, and a name's resolution.

tls: a TLS handshake with the host (verified against the system's trust store, the name
checked); the value is the days until the certificate expires, and the check alerts below its
`alert_below` (14 days unless set). A handshake that fails verification is bad at once: an
expired or wrong certificate is an outage for every browser.

dns: the name is resolved through the system resolver; the value is the lookup time in ms. With
`expect`, the answer must include that address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from typing import Any

from steward.monitoring.alerts import BAD, GOOD, Sample
from steward.monitoring.spec import CheckSpec

DAY = 86_400.0


async def tls(spec: CheckSpec, at: dt.datetime) -> Sample:
    context = ssl.create_default_context()  # read now: SSL_CERT_FILE may change under tests
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(spec.host, spec.port, ssl=context, server_hostname=spec.host),
            spec.timeout,
        )
    except TimeoutError:
        return Sample(at, spec.name, BAD, None, {"error": f"no answer within {spec.timeout:g}s"})
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or exc.reason or "verification failed"
        return Sample(at, spec.name, BAD, None, {"error": f"certificate not valid: {why}"})
    except (OSError, ssl.SSLError) as exc:
        return Sample(at, spec.name, BAD, None, {"error": f"{type(exc).__name__}: {exc}"[:200]})
    try:
        cert: dict[str, Any] = writer.get_extra_info("peercert") or {}
    finally:
        writer.close()
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC)
    days = round((expires - at).total_seconds() / DAY, 2)
    details = {"expires": expires.isoformat(), "issuer": _issuer(cert)}
    return Sample(at, spec.name, GOOD, days, details)


def _issuer(cert: dict[str, Any]) -> str:
    parts = dict(pair for rdn in cert.get("issuer", ()) for pair in rdn)
    return str(parts.get("organizationName") or parts.get("commonName") or "?")


async def dns(spec: CheckSpec, at: dt.datetime) -> Sample:
    began = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(spec.host, None, type=socket.SOCK_STREAM), spec.timeout
        )
    except TimeoutError:
        return Sample(at, spec.name, BAD, None, {"error": f"no answer within {spec.timeout:g}s"})
    except (OSError, UnicodeError) as exc:
        return Sample(at, spec.name, BAD, None, {"error": f"does not resolve: {exc}"[:200]})
    ms = round((time.perf_counter() - began) * 1000, 1)
    addresses = sorted({str(info[4][0]) for info in infos})
    details: dict[str, Any] = {"addresses": addresses}
    if spec.expect and spec.expect not in addresses:
        details["error"] = f"{spec.host} resolves to {', '.join(addresses)}, not {spec.expect}"
        return Sample(at, spec.name, BAD, ms, details)
    return Sample(at, spec.name, GOOD, ms, details)
