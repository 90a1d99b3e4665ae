"""The state of a KMS key behind a key wrapper (AWS KMS `DescribeKey`).

A wrapper whose key is disabled or pending deletion still looks fine in the vault, until the day
nobody can unwrap the master key: this asks KMS. Only `DescribeKey` is called (no decrypt), so the
report needs `kms:DescribeKey`, not the right to use the key.
https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html
"""

from __future__ import annotations

from seawall.errors import RetryableError, SeawallError


def kms_key_state(key_id: str, region: str | None = None, endpoint: str | None = None) -> tuple[str, str]:
    """("PASS" | "FAIL" | "UNKNOWN", detail) for the key `key_id` (id, ARN or alias)."""
    import boto3

    from seawall.stores.boto_errors import translate_boto_errors

    if region is None and key_id.startswith("arn:"):
        region = key_id.split(":")[3] or None
    try:
        with translate_boto_errors(f"describing KMS key {key_id}"):
            client = boto3.client("kms", region_name=region or "us-east-1", endpoint_url=endpoint)
            meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
    except SeawallError as exc:
        status = "UNKNOWN" if isinstance(exc, RetryableError) else "FAIL"  # unreachable is not "broken"
        return status, f"KMS key {key_id}: {exc.message}"
    state = meta.get("KeyState", "unknown")
    if state == "Enabled" and meta.get("Enabled", True):
        return "PASS", f"KMS key {key_id} is Enabled"
    return "FAIL", f"KMS key {key_id} is {state}: the wrapper cannot unwrap the master key"
