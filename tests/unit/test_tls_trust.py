"""Airflow's certificate is checked against a CA bundle loaded once per process (``SharedTrustAdapter``), with the
same verdicts as requests' own per-connection loading: a real TLS server on 127.0.0.1 with certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dagtrigger.airflow import AirflowClient, SharedTrustAdapter, make_session
from dagtrigger.airflow_auth import StaticBearer

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)  # certificates valid for years around it, whatever today is


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(directory: Path, label: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=3650))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, names: list[str]) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("airflow"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=3650))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    path = directory / "server.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"version": "3.3.2"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # every request opens a new TLS connection
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def tls_server(cert_and_key: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_and_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def trusted(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca_key, ca, ca_path = _ca(tmp_path, "test-ca")
    with tls_server(_server_cert(tmp_path, ca_key, ca, ["127.0.0.1", "localhost"])) as url:
        yield url, ca_path


def _session(bundle: Path) -> requests.Session:
    session = make_session(5.0)
    session.trust_env = False
    session.verify = str(bundle)
    return session


def test_the_bundle_is_read_once_and_every_new_connection_is_still_verified(trusted: tuple[str, Path]) -> None:
    url, bundle = trusted
    session = _session(bundle)
    assert session.get(f"{url}/api/v2/version", timeout=5).json() == {"version": "3.3.2"}
    # Before: urllib3 loaded the bundle's file again for every new connection (20-30 ms of CPU each with certifi's).
    # Now the file is not read again: the second connection succeeds with the file gone bad.
    bundle.write_text("not a certificate\n")
    for _ in range(3):
        assert session.get(f"{url}/api/v2/version", timeout=5).status_code == 200
    adapter = session.get_adapter(url)
    assert isinstance(adapter, SharedTrustAdapter)
    assert len(adapter._contexts) == 1


def test_a_certificate_from_another_ca_is_refused(trusted: tuple[str, Path], tmp_path: Path) -> None:
    url, _bundle = trusted
    _key, _cert, other_ca = _ca(tmp_path, "other-ca")
    with pytest.raises(requests.exceptions.SSLError):
        _session(other_ca).get(f"{url}/api/v2/version", timeout=5)


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    ca_key, ca, ca_path = _ca(tmp_path, "test-ca")
    with tls_server(_server_cert(tmp_path, ca_key, ca, ["airflow.example.invalid"])) as url:
        with pytest.raises(requests.exceptions.SSLError):
            _session(ca_path).get(f"{url}/api/v2/version", timeout=5)


def test_requests_default_trust_store_refuses_a_private_ca(trusted: tuple[str, Path]) -> None:
    url, _bundle = trusted
    session = make_session(5.0)
    session.trust_env = False
    session.verify = True  # certifi's bundle: our test CA is not in it
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{url}/api/v2/version", timeout=5)


def test_the_warm_up_loads_the_bundle_before_the_first_connection(trusted: tuple[str, Path]) -> None:
    url, bundle = trusted
    client = AirflowClient(url, StaticBearer("t0ken"), timeout_s=5, session=_session(bundle))
    assert client.preload_trust() is True
    bundle.write_text("not a certificate\n")  # loaded already: the first connection does not read it
    assert client.api_version() == "v2"


def test_plain_http_has_nothing_to_load() -> None:
    client = AirflowClient("http://127.0.0.1:9", StaticBearer("t0ken"), timeout_s=5)
    assert client.preload_trust() is False
