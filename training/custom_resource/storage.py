"""The custom resource's S3 reads and writes (the models bucket and a fetched s3:// source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from training.custom_resource import sources

# HeadObject on a missing key answers 404 with no body, so botocore names the error by its status.
_MISSING = ("404", "NoSuchKey", "NotFound")


class Storage:
    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def read_text(self, bucket: str, key: str) -> str:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    def upload(self, path: Path, bucket: str, key: str) -> None:
        self.s3.upload_file(str(path), bucket, key)

    def fetch(self, uri: str, directory: Path) -> Path:
        """Download a source (s3:// with this client, or https://) into `directory`."""
        return sources.fetch(uri, directory, s3_client=self.s3)
