"""What S3 vouches for about an object's bytes: the ETag as MD5, and a checked SHA-256.

S3Store writes one checksum per PUT (SHA-256) and reads it back on every GET; the copy reuses both
facts (seawall.copy.verify) so no byte is hashed twice on its way between two regions.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from botocore.httpchecksum import Sha256Checksum, StreamingChecksumBody

from seawall.stores.base import Fetched

__all__ = ["Fetched", "checked_sha256", "md5_etag", "sha256_b64"]

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


def sha256_b64(data: bytes) -> str:
    """The base64 SHA-256 S3 takes as `x-amz-checksum-sha256`."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def md5_etag(response: dict[str, Any]) -> str | None:
    """The ETag of a PutObject/GetObject response if it is the MD5 of the stored bytes, else None.

    That holds for single-part objects without SSE-KMS, DSSE-KMS or SSE-C, whose ETags are
    something else (multipart ETags also carry a `-N` suffix).
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html (ETag)
    """
    tag = str(response.get("ETag", "")).strip('"').lower()
    plain = response.get("ServerSideEncryption") in (None, "AES256") and not response.get("SSECustomerAlgorithm")
    return tag if plain and _MD5_HEX.match(tag) else None


def checked_sha256(body: Any) -> str | None:
    """The SHA-256 botocore computed over a GetObject body it has read to the end, if it checked one.

    botocore checks the first checksum in its priority list that the response carries (and raises
    on a mismatch once the body is read whole); only a SHA-256 it computed itself is passed on.
    """
    checksum = body.checksum if isinstance(body, StreamingChecksumBody) else None
    return checksum.b64digest() if isinstance(checksum, Sha256Checksum) else None
