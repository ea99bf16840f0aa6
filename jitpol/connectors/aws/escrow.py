"""Secrets Manager escrow (the SecretEscrow capability of type aws): store a shared account's
live secret so operators can reach it in an emergency. Not one of the connector's models."""

from __future__ import annotations

import re
import uuid

from jitpol.connectors.aws.session import AwsSession, _NotFound
from jitpol.errors import PermanentTargetError

_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")


class SecretsManagerEscrow(AwsSession):
    """AwsConnector's escrow()."""

    def escrow(self, secret_id: str, value: str, description: str = "") -> str:
        """Store `value` as the current version of Secrets Manager secret `secret_id`, creating
        the secret if needed, so operators can reach a shared account's live secret in an
        emergency. Rotation is done here, not by a rotation Lambda: the new version is written
        as AWSPENDING, then promoted to AWSCURRENT (the old one becomes AWSPREVIOUS). Returns
        the new version id. The value never appears in messages."""
        if not _SECRET_ID.fullmatch(secret_id):
            raise PermanentTargetError(f"target {self.name}: {secret_id!r} is not a Secrets Manager secret name")
        client = self._clients.get("secretsmanager")
        if client is None:
            with self._setup_errors():
                client = self._clients["secretsmanager"] = self._session().client(
                    "secretsmanager", endpoint_url=self._endpoint_url, config=self._config())
        token = str(uuid.uuid4())
        try:
            with self._aws_errors("DescribeSecret"):
                described = client.describe_secret(SecretId=secret_id)
        except _NotFound:
            with self._aws_errors("CreateSecret"):
                created = client.create_secret(Name=secret_id, SecretString=value, ClientRequestToken=token,
                                               Description=description or "escrowed by jitpol")
            return str(created["VersionId"])
        current = next((v for v, stages in (described.get("VersionIdsToStages") or {}).items()
                        if "AWSCURRENT" in stages), None)
        with self._aws_errors("PutSecretValue"):
            client.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=value,
                                    VersionStages=["AWSPENDING"])
        with self._aws_errors("UpdateSecretVersionStage"):
            client.update_secret_version_stage(
                SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token,
                **({"RemoveFromVersionId": current} if current else {}))
            # finish like a rotation function's finishSecret step: the new version is no longer pending
            client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING",
                                               RemoveFromVersionId=token)
        return token
