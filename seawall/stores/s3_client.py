"""The boto3 client of an `S3Store`: its session (explicit keys, a profile, or the AWS chain) and
its configuration (retries, timeouts, connection pool, addressing, payload signing).

Secrets are read out of their `SecretStr` here only, when the session is built.
"""

from __future__ import annotations

from typing import Any

import boto3.session
from botocore.config import Config
from pydantic import SecretStr

# botocore retries a little by itself (standard mode: throttling and 5xx with backoff), but
# Prefect retries RetryableError on top, so keep the inner loop short to bound the total wait.
RETRIES = {"max_attempts": 3, "mode": "standard"}
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# Matches the thread pool sizes our task runners use; botocore's default of 10 would queue.
MAX_POOL = 16


def new_session(session: boto3.session.Session | None, profile: str | None, region: str,
                access_key_id: str | None, secret_access_key: SecretStr | None,
                session_token: SecretStr | None) -> boto3.session.Session:
    """The given session, else one from explicit keys, else one from `profile` or the standard chain."""
    if session is not None:
        return session
    if access_key_id is not None and secret_access_key is not None:
        return boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key.get_secret_value(),
            aws_session_token=session_token.get_secret_value() if session_token else None,
            region_name=region,
        )
    return boto3.session.Session(profile_name=profile, region_name=region)


def s3_options(endpoint: str | None) -> dict[str, Any]:
    """botocore's `s3` settings for an endpoint (None: AWS itself)."""
    options: dict[str, Any] = {}
    if endpoint:
        # Self-hosted S3 (MinIO, Ceph, moto) rarely has wildcard DNS for virtual hosts.
        options["addressing_style"] = "path"
    if not endpoint or endpoint.lower().startswith("https:"):
        # Over TLS, body integrity comes from TLS and the signed x-amz-checksum-sha256 header
        # S3 checks, so SigV4 need not hash the body a second time (UNSIGNED-PAYLOAD, what
        # botocore itself does for PutObject with a checksum header over https). Plain-HTTP
        # endpoints keep the signed payload: there it is what binds the body to the signature.
        options["payload_signing_enabled"] = False
    return options


def client_config(endpoint: str | None) -> Config:
    return Config(
        retries=RETRIES,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=MAX_POOL,
        s3=s3_options(endpoint) or None,
    )
