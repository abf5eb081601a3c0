"""An Airflow-like HTTPS endpoint on 127.0.0.1 with a self-signed certificate made at run time.

It answers what the function calls — ``GET /api/v2/version`` and ``POST /api/v2/dags/<id>/dagRuns`` (200, then 409
for a run id it has seen) — and nothing else. It runs as its own process (``python -m bench.endpoint``) so its work
does not share the load client's GIL. Each answer is one ``sendall`` on a TCP_NODELAY socket: a server that writes
headers and body separately stalls every call ~40 ms on delayed ACK, which would swamp what we measure.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1/localhost (what Google front ends serve); (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dagtrigger-bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "endpoint-cert.pem", directory / "endpoint-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def trust_bundle(cert: Path, directory: Path) -> Path:
    """certifi's CA bundle plus our certificate: the trust store a deployed function has, so that a new TLS connection
    costs what it costs in production (urllib3 loads the whole bundle into a new SSLContext for every connection)."""
    import certifi

    bundle = directory / "ca-bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + cert.read_text())
    return bundle


def _answer(status: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AirflowLikeServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/api/v2/version":
            self._send(_answer(200, {"version": "3.3.2", "git_version": None}))
        else:
            self._send(_answer(404, {"detail": "Not Found"}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 6 or parts[1:4] != ["api", "v2", "dags"] or parts[5] != "dagRuns":
            self._send(_answer(404, {"detail": "Not Found"}))
            return
        try:
            run_id = str(json.loads(raw)["dag_run_id"])
        except (ValueError, KeyError, TypeError):
            self._send(_answer(422, {"detail": "dag_run_id is required"}))
            return
        if self.server.remember(parts[4], run_id):
            self._send(_answer(200, {"dag_run_id": run_id, "dag_id": parts[4], "state": "queued"}))
        else:
            self._send(_answer(409, {"detail": f"DAGRun with dag_run_id: '{run_id}' already exists"}))

    def _send(self, data: bytes) -> None:
        self.wfile.write(data)  # one write: headers and body leave in one segment
        self.wfile.flush()


class AirflowLikeServer(ThreadingHTTPServer):
    """A thread per connection; TLS is negotiated in that thread, so one slow handshake blocks nobody else."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the listen backlog; socketserver's 5 drops SYNs under bursts of new connections

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.context = context
        self._runs: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def remember(self, dag_id: str, run_id: str) -> bool:
        """True the first time a run id is seen (Airflow's 200), False afterwards (its 409)."""
        with self._lock:
            if (dag_id, run_id) in self._runs:
                return False
            self._runs.add((dag_id, run_id))
            return True

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = AirflowLikeServer(args.port, context)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"listening on https://{HOST}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
