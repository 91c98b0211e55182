"""SecretStore on AWS Secrets Manager: one secret per name, under a prefix (``datatorag/``).

API reference: https://docs.aws.amazon.com/secretsmanager/latest/apireference/ (CreateSecret,
PutSecretValue, GetSecretValue, DeleteSecret, RestoreSecret). Secrets Manager encrypts with KMS.
A deleted secret is deleted without a recovery window, so the name is free again; a name still
scheduled for deletion (deleted with a window, by hand) is restored and overwritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from datatorag.domain.errors import SecretNotFound
from datatorag.domain.secrets import check_secret_name
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretsManagerStore:
    def __init__(self, client: SecretsManagerClient, prefix: str = "datatorag/") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretsManagerStore:
        client: SecretsManagerClient = boto3.client(
            "secretsmanager",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
        return cls(client, settings.secrets_prefix)

    def put(self, name: str, value: str) -> None:
        secret_id = self._id(name)
        try:
            self.client.put_secret_value(SecretId=secret_id, SecretString=value)
            return
        except ClientError as err:
            code = _code(err)
            if code == "InvalidRequestException":  # scheduled for deletion
                self.client.restore_secret(SecretId=secret_id)
                self.client.put_secret_value(SecretId=secret_id, SecretString=value)
                return
            if code != "ResourceNotFoundException":
                raise
        try:
            self.client.create_secret(Name=secret_id, SecretString=value)
        except ClientError as err:
            if _code(err) != "ResourceExistsException":  # created meanwhile: overwrite it
                raise
            self.client.put_secret_value(SecretId=secret_id, SecretString=value)

    def get(self, name: str) -> str:
        try:
            value = self.client.get_secret_value(SecretId=self._id(name))
        except ClientError as err:
            if _code(err) in {"ResourceNotFoundException", "InvalidRequestException"}:
                raise SecretNotFound(f"no secret {name!r}") from None
            raise
        return value["SecretString"]

    def delete(self, name: str) -> None:
        try:
            self.client.delete_secret(SecretId=self._id(name), ForceDeleteWithoutRecovery=True)
        except ClientError as err:
            if _code(err) != "ResourceNotFoundException":
                raise

    def _id(self, name: str) -> str:
        return self.prefix + check_secret_name(name)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
