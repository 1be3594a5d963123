"""The tls and dns kinds, and http checks with a method, headers and a body."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from steward.monitoring.checks import Runner
from steward.monitoring.options import ChecksError
from steward.monitoring.spec import parse_checks
from tests.monitoring.targets import Route

NOW = dt.datetime.now(dt.UTC)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def certificate(tmp_path, days_left: float) -> tuple[ssl.SSLContext, str]:
    """A server context for `localhost` signed by a test CA, and the CA's file to trust."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("steward test CA"))
        .issuer_name(_name("steward test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT), as real CAs' certificates allow:
        # key identifiers and key usage, like any public CA's.
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context, str(tmp_path / "ca.pem")


async def serve_tls(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def hello(reader, writer):
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def runner():
    r = Runner()
    yield r
    await r.aclose()


@pytest.mark.parametrize(("days", "status"), [(90, "ok"), (10, "bad")])
async def test_tls_reports_the_days_left_and_alerts_below_fourteen(
    tmp_path, monkeypatch, runner, days, status
):
    context, ca = certificate(tmp_path, days)
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    server, port = await serve_tls(context)
    try:
        (spec,) = parse_checks(f"cert=tls://localhost:{port}")
        sample = await runner.run_one(spec)
    finally:
        server.close()
    assert sample.status == status, sample.details
    assert days - 1 < sample.value <= days
    assert spec.band() == (14.0, None)


async def test_tls_calls_a_certificate_it_cannot_trust_bad(tmp_path, runner):
    context, _ = certificate(tmp_path, 90)  # signed by a CA nobody trusts
    server, port = await serve_tls(context)
    try:
        (spec,) = parse_checks(f"cert=tls://localhost:{port} alert_below=30")
        sample = await runner.run_one(spec)
    finally:
        server.close()
    assert sample.status == "bad"
    assert sample.details["error"].startswith("certificate not valid")


async def test_dns_resolves_and_checks_the_expected_address(runner):
    good, wrong = parse_checks(
        "a=dns://localhost expect=127.0.0.1; b=dns://localhost expect=10.9.9.9"
    )
    assert (await runner.run_one(good)).status == "ok"
    sample = await runner.run_one(wrong)
    assert sample.status == "bad"
    assert sample.details["error"].endswith("not 10.9.9.9")


async def test_http_sends_the_method_headers_from_the_environment_and_the_body(
    server, monkeypatch, runner
):
    monkeypatch.setenv("API_TOKEN", "s3cret-token")
    server.routes["/q"] = Route(200, b"ok")
    (spec,) = parse_checks(
        f"q={server.url('/q')} method=post "
        """headers='{"Authorization": "Bearer ${API_TOKEN}"}' body='{"ping": 1}'"""
    )
    assert "s3cret" not in repr(spec)
    sample = await runner.run_one(spec)
    assert sample.status == "ok"
    method, path, headers, body = server.requests[-1]
    assert (method, path, body) == ("POST", "/q", b'{"ping": 1}')
    assert headers["Authorization"] == "Bearer s3cret-token"
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("method=FETCH", "has the method 'FETCH'"),
        ("headers='[1]'", "headers that are not a JSON object"),
        ("""headers='{"X-Key": "${NOT_SET_ANYWHERE}"}'""", "${NOT_SET_ANYWHERE}, which is not set"),
    ],
)
def test_bad_request_options_are_refused_in_one_sentence(options, problem):
    with pytest.raises(ChecksError, match=re.escape(problem)):
        parse_checks(f"q=https://example.com/ {options}")
