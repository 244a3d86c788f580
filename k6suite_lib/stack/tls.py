"""TLS for embedded stacks: a CA made per stack, a server key and certificate for 127.0.0.1, and the
handshake probe S1 judges F1.3 ("works with TLS") with.

Why per stack: a client can only verify a server against a CA it was given, so each stack makes its
own and hands clients only the CA certificate (public). The CA's private key exists only in memory
while it signs the server certificate; the server key is written once, mode 0600, into the stack's
data directory (wiped with the stack), and nothing else ever reads or copies it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

from k6suite_lib.stack.layout import HOST

CA_FILE = "ca.pem"
SERVER_FILE = "server.pem"  # the server's private key, then its certificate chain (Kafka's PEM keystore)
VALID_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # the CA certificate clients trust
    server_file: Path  # private key + certificate chain, mode 0600


def issue(directory: Path, host: str = HOST) -> TlsFiles:
    """A fresh CA and a server certificate for host (as an IP SAN, which is what clients verify
    against when they connect to an IP address)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"k6suite stack CA {os.urandom(4).hex()}")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                   .issuer_name(ca_name).public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                                  critical=False)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path = directory / CA_FILE
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    server_path = directory / SERVER_FILE
    key = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(server_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return TlsFiles(ca_file=ca_path, server_file=server_path)


@dataclass(frozen=True)
class Handshake:
    """What a client got from a TLS endpoint: 'response' (verified handshake and a Kafka answer),
    'verify-failed', 'handshake-failed', 'closed', 'refused', 'timeout' or 'error'."""

    outcome: str
    tls_version: str = ""
    error: str = ""
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "response"

    def describe(self) -> str:
        if self.ok:
            return f"{self.tls_version} handshake verified, ApiVersions answered in {self.elapsed_ms:.0f} ms"
        return f"{self.outcome}: {self.error} after {self.elapsed_ms:.0f} ms"


def handshake(address: str, cafile: Path | None, timeout_s: float = 5.0) -> Handshake:
    """Connect over TLS verifying the certificate (against cafile, or the system's trust store when
    None) and the IP in it, then send ApiVersions v0 and read the answer."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    started = time.monotonic()

    def done(outcome: str, error: str = "", version: str = "") -> Handshake:
        return Handshake(outcome, version, error, (time.monotonic() - started) * 1000)

    request = ApiVersionsRequest[0]()
    request.with_header(correlation_id=1, client_id="k6suite-tls-probe")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(request.encode(header=True, framed=True))
            head = _read(sock, 4)
            payload = _read(sock, struct.unpack(">i", head)[0]) if head else None
            if payload is None:
                return done("closed", "the connection closed without a Kafka answer", sock.version() or "")
            ApiVersionsResponse.decode(payload, version=0, header=True)
            return done("response", version=sock.version() or "")
    except ssl.SSLCertVerificationError as exc:
        return done("verify-failed", exc.verify_message or str(exc))
    except ssl.SSLError as exc:
        return done("handshake-failed", f"{exc.reason or exc}")
    except ConnectionRefusedError as exc:
        return done("refused", str(exc))
    except (ConnectionResetError, BrokenPipeError) as exc:
        return done("closed", f"{type(exc).__name__}: {exc}")
    except TimeoutError:
        return done("timeout", f"no answer within {timeout_s:.0f} s")
    except Exception as exc:  # an undecodable answer or any other failure is the finding
        return done("error", f"{type(exc).__name__}: {exc}")


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return bytes(data)
