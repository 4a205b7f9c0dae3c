"""``naestro serve`` over TLS, for real: a CA and a server certificate made here with ``cryptography``, a real
``naestro serve --ssl-certfile --ssl-keyfile`` process, and HTTPS clients that pin that CA.

What must hold: with the CA pinned, the API answers over HTTPS (health, metrics from the real Redis queue, a run
id looked up); the bearer token is still required inside TLS (none or a wrong one: 401); a client that
does not trust the CA is refused by its own verification; plain HTTP on the TLS port gets no answer at all; and a
key that cannot serve (encrypted with a passphrase, or not the certificate's) stops ``serve`` before it listens
with exit 2 and a message saying what to do, instead of a traceback or an OpenSSL passphrase prompt.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from naestro.childproc import terminate
from naestro.cli import app
from tests.conftest import REPO
from tests.integration.test_checkpointers import PG_URL
from tests.mcp_http import free_port

NAESTRO = Path(sys.executable).parent / "naestro"
REDIS_URL = "redis://127.0.0.1:6379/5"
TOKEN = "tls-test-token-0123456789abcdef-0123456789"


def _port() -> int:
    """A free port; from ``NAESTRO_TEST_PORTS=LO-HI`` when set (machines where each tester has a range)."""
    span = os.environ.get("NAESTRO_TEST_PORTS")
    if not span:
        return free_port()
    low, high = (int(p) for p in span.split("-"))
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in NAESTRO_TEST_PORTS={span}")


@dataclass(frozen=True)
class Pki:
    ca: Path  # what clients pin
    cert: Path  # the server's certificate, issued by the CA for 127.0.0.1 and localhost
    key: Path
    encrypted_key: Path  # the same key, under a passphrase
    other_key: Path  # a key that is not the certificate's


def _key_file(path: Path, key: ec.EllipticCurvePrivateKey, *, passphrase: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)
    return path


def make_pki(folder: Path) -> Pki:
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "naestro test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "naestro serve")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pki(ca=folder / "ca.pem", cert=folder / "cert.pem", key=_key_file(folder / "key.pem", key),
               encrypted_key=_key_file(folder / "key.enc.pem", key, passphrase=b"correct horse"),
               other_key=_key_file(folder / "other.pem", ec.generate_private_key(ec.SECP256R1())))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    return make_pki(folder)


def _env(tmp_path: Path, queue: str) -> dict[str, str]:
    return {**os.environ, "NAESTRO_HOME": str(tmp_path / "home"), "NAESTRO_API_TOKEN": TOKEN,
            "NAESTRO_MODELS_DIR": str(REPO / ".naestro" / "models"), "NAESTRO_CHECKPOINT_URL": PG_URL,
            "NAESTRO_BROKER_URL": REDIS_URL, "NAESTRO_QUEUE": queue}


@pytest.fixture
def https_api(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, int]]:
    """``naestro serve`` with the test certificate on 127.0.0.1: its https:// URL and port."""
    queue = f"hb-tls-{os.getpid()}"
    broker = redis.Redis.from_url(REDIS_URL)
    keys = [queue, *(f"{queue}:{step}" for step in (3, 6, 9))]
    port = _port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([str(NAESTRO), "serve", "--port", str(port), "--ssl-certfile", str(pki.cert),
                             "--ssl-keyfile", str(pki.key)], env=_env(tmp_path, queue), stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    pinned = ssl.create_default_context(cafile=str(pki.ca))
    try:
        deadline = time.monotonic() + 600  # generous: the API builds a runtime at start; the machine is shared
        while True:
            assert proc.poll() is None, f"naestro serve exited {proc.returncode}: {log_path.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", verify=pinned, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"naestro serve did not answer: {log_path.read_text()}"
            time.sleep(0.5)
        yield url, port
    finally:
        terminate(proc, grace_s=30)
        log.close()
        broker.delete(*keys)
        broker.close()


def test_the_api_answers_over_https_with_the_ca_pinned_and_nothing_else(https_api: tuple[str, int],
                                                                         pki: Pki) -> None:
    url, port = https_api
    pinned = ssl.create_default_context(cafile=str(pki.ca))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, verify=pinned, timeout=60) as client:
        assert client.get("/healthz").json() == {"ok": True}
        metrics = client.get("/metrics", headers=auth)  # through TLS and the token to the real Redis queue
        assert metrics.status_code == 200 and 'naestro_queue_depth{priority="interactive"} 0' in metrics.text
        unknown = client.get("/runs/20990101-000000-beef", headers=auth)
        assert unknown.status_code == 404 and unknown.json()["kind"] == "UnknownRun"  # the handler ran

        # inside TLS the token is still the gate
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/runs/20990101-000000-beef", headers={"Authorization": "Bearer " + "x" * 43})
        assert wrong.status_code == 401 and wrong.json()["kind"] == "Unauthorized"

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", timeout=60)  # the system's CAs do not know this one: the client refuses
    with pytest.raises(httpx.TransportError) as plain:  # plain HTTP on the TLS port: no HTTP answer at all
        httpx.get(f"http://127.0.0.1:{port}/healthz", headers=auth, timeout=60)
    assert not isinstance(plain.value, httpx.TimeoutException)  # refused: the server ended the connection


@pytest.mark.parametrize(("which", "says"), [("encrypted_key", "encrypted with a passphrase"),
                                             ("other_key", "the key must be the certificate's"),
                                             ("missing", "no such file")])
def test_a_key_that_cannot_serve_stops_serve_before_it_listens(which: str, says: str, pki: Pki,
                                                                 tmp_path: Path) -> None:
    key = tmp_path / "nowhere.pem" if which == "missing" else getattr(pki, which)
    env = {k: v for k, v in _env(tmp_path, "hb-tls-unused").items() if k.startswith("NAESTRO_")}
    result = CliRunner().invoke(app, ["serve", "--port", str(_port()), "--ssl-certfile", str(pki.cert),
                                      "--ssl-keyfile", str(key)], env=env)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split()), result.output
