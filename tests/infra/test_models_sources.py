"""The training Lambda's HTTPS download verifies TLS (a real local HTTPS server, self-signed cert)."""

from __future__ import annotations

import functools
import http.server
import ssl
import subprocess
import threading
import urllib.error

import pytest

from training.custom_resource.sources import fetch, parse_s3_uri


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("https")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (root / "creditcard.csv").write_text("Time,V1\n0,1\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args, **kwargs: None
    server = http.server.ThreadingHTTPServer(("localhost", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}", cert
    server.shutdown()


def test_an_untrusted_certificate_is_refused(https_server, tmp_path):
    url, _ = https_server
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(f"{url}/creditcard.csv", tmp_path, s3_client=None)


def test_a_trusted_certificate_downloads_the_file(https_server, tmp_path, monkeypatch):
    url, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust our test CA the way OpenSSL is told to
    path = fetch(f"{url}/creditcard.csv", tmp_path, s3_client=None)
    assert path.name == "creditcard.csv"
    assert path.read_text() == "Time,V1\n0,1\n"


@pytest.mark.parametrize(
    "uri", ["http://example.com/creditcard.csv", "ftp://example.com/x.csv", "s3://bucket"]
)
def test_other_schemes_are_refused(uri, tmp_path):
    with pytest.raises(ValueError, match="s3://|unsupported data source"):
        fetch(uri, tmp_path, s3_client=None)


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b.zip") == ("bucket", "a/b.zip")
    with pytest.raises(ValueError, match="not an s3://bucket/key URI"):
        parse_s3_uri("s3://bucket/")
