"""Drives a running Strongroom with boto3 and the AWS Encryption SDK, the way Python applications use AWS KMS.

The endpoint comes from AWS_ENDPOINT_URL_KMS, which both libraries honour unchanged.
Exits non-zero, with a message, on the first behaviour that differs from AWS KMS.
"""

import base64
import sys

import boto3
from botocore.exceptions import ClientError


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as error:
        got = error.response["Error"]["Code"]
        if got != code:
            sys.exit(f"expected {code}, got {got}: {error}")
        return
    sys.exit(f"expected {code}, but the call succeeded")


def main():
    kms = boto3.client("kms", region_name="us-east-1")

    key = kms.create_key(Description="boto3 compatibility", Tags=[{"TagKey": "suite", "TagValue": "python"}])
    key_id = key["KeyMetadata"]["KeyId"]
    arn = key["KeyMetadata"]["Arn"]
    assert key["KeyMetadata"]["KeySpec"] == "SYMMETRIC_DEFAULT", key
    kms.create_alias(AliasName="alias/python-compat", TargetKeyId=key_id)

    context = {"tenant": "t-1", "purpose": "compat"}
    encrypted = kms.encrypt(KeyId="alias/python-compat", Plaintext=b"hello from boto3", EncryptionContext=context)
    assert encrypted["KeyId"] == arn, encrypted
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == b"hello from boto3", decrypted
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=encrypted["CiphertextBlob"])

    data_key = kms.generate_data_key(KeyId=arn, KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32
    second = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(
        CiphertextBlob=data_key["CiphertextBlob"],
        SourceEncryptionContext=context,
        DestinationKeyId=second,
        DestinationEncryptionContext=context,
    )
    again = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext=context)
    assert again["Plaintext"] == data_key["Plaintext"]

    aliases = [a["AliasName"] for page in kms.get_paginator("list_aliases").paginate() for a in page["Aliases"]]
    assert "alias/python-compat" in aliases, aliases
    keys = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}) for k in page["Keys"]]
    assert key_id in keys and second in keys, keys
    tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
    assert tags == [{"TagKey": "suite", "TagValue": "python"}], tags

    kms.disable_key(KeyId=key_id)
    expect_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    expect_error("NotFoundException", kms.describe_key, KeyId="alias/does-not-exist")
    expect_error("ValidationException", kms.generate_random, NumberOfBytes=2000)

    encryption_sdk(second)
    print("boto3 and AWS Encryption SDK compatibility: ok")


def encryption_sdk(key_id):
    """Envelope encryption through the AWS Encryption SDK's KMS master key provider."""
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import CommitmentPolicy

    arn = boto3.client("kms", region_name="us-east-1").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn])
    message = b"an envelope-encrypted message " * 100
    ciphertext, header = client.encrypt(source=message, key_provider=provider, encryption_context={"app": "compat"})
    plaintext, decrypted_header = client.decrypt(source=ciphertext, key_provider=provider)
    assert plaintext == message
    assert decrypted_header.encryption_context["app"] == "compat"


if __name__ == "__main__":
    main()
