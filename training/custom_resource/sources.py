"""Fetch the training data source into the Lambda's /tmp: S3 object or HTTPS URL (TLS verified)."""

from __future__ import annotations

import shutil
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

DOWNLOAD_TIMEOUT_SECONDS = 120


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def fetch(uri: str, directory: Path, *, s3_client) -> Path:
    """Download `uri` (s3:// or https://) into `directory`; returns the local file."""
    directory.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(uri).path).name or "source"
    target = directory / name
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        s3_client.download_file(bucket, key, str(target))
    elif uri.startswith("https://"):
        # The default context verifies the server certificate and host name.
        request = urllib.request.Request(uri, headers={"User-Agent": "fraud-detection-training"})  # noqa: S310
        with (
            urllib.request.urlopen(  # noqa: S310 - the scheme is checked above
                request, timeout=DOWNLOAD_TIMEOUT_SECONDS, context=ssl.create_default_context()
            ) as response,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(response, out, length=1 << 20)
    else:
        raise ValueError(f"unsupported data source {uri!r}: expected s3://, https:// or 'synthetic'")
    return target
