"""ECR repositories: where a program's container images go.

The emulator takes a repository name ECR refuses and a KMS key with AES256 encryption;
both are checked here. A repository holding images is deleted only with ``forceDelete``,
as in ECR.
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    resource_exists,
    retag,
)

__all__ = ["HANDLERS"]

_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_MUTABILITY = ("MUTABLE", "IMMUTABLE")
_ENCRYPTION = ("AES256", "KMS")


def _encryption(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The one encryption configuration declared, as a dict, or None."""
    configs = inputs.get("encryptionConfigurations") or []
    first = configs[0] if configs else None
    return first if isinstance(first, dict) else None


class Repository(Handler):
    type = "aws:ecr/repository:Repository"
    emulates = frozenset(
        {
            "encryptionConfigurations.encryptionType",
            "encryptionConfigurations.kmsKey",
            "forceDelete",
            "imageScanningConfiguration.scanOnPush",
            "imageTagMutability",
            "name",
            "tags",
        }
    )
    replace_on = frozenset({"name", "encryptionConfigurations"})
    computed = ("id", "arn", "name", "registryId", "repositoryUrl")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        name = inputs.get("name")
        if isinstance(name, str) and not (2 <= len(name) <= 256 and _NAME.match(name)):
            raise HandlerError(
                f"repository name '{name}' is not valid: 2-256 characters of lowercase "
                "letters, digits and . _ - /, each part starting and ending with a letter "
                "or digit"
            )
        mutability = inputs.get("imageTagMutability")
        if isinstance(mutability, str) and mutability not in _MUTABILITY:
            raise HandlerError(
                f"imageTagMutability '{mutability}' is not MUTABLE or IMMUTABLE (the "
                "*_WITH_EXCLUSION modes need imageTagMutabilityExclusionFilters, which the "
                "sandbox does not emulate)"
            )
        configs = inputs.get("encryptionConfigurations")
        if isinstance(configs, list) and len(configs) > 1:
            raise HandlerError("encryptionConfigurations takes one configuration")
        config = _encryption(inputs) or {}
        kind = config.get("encryptionType", "AES256")
        if isinstance(kind, str) and kind not in _ENCRYPTION:
            raise HandlerError(f"encryptionType '{kind}' is not AES256 or KMS")
        if config.get("kmsKey") and kind != "KMS":
            raise HandlerError("kmsKey applies to encryptionType KMS only, not AES256")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ecr = ctx.client("ecr")
        repo_name = self.physical_name(name.lower().replace("_", "-"), inputs, max_len=256)
        args: dict[str, Any] = {
            "repositoryName": repo_name,
            "imageTagMutability": inputs.get("imageTagMutability", "MUTABLE"),
            "imageScanningConfiguration": self._scanning(inputs),
            "tags": self.tag_list(inputs.get("tags")),
        }
        config = _encryption(inputs)
        if config:
            args["encryptionConfiguration"] = {
                "encryptionType": config.get("encryptionType", "AES256"),
                **({"kmsKey": config["kmsKey"]} if config.get("kmsKey") else {}),
            }
        try:
            repo = ecr.create_repository(**args)["repository"]
        except Exception as exc:
            raise HandlerError(f"cannot create repository '{repo_name}': {exc}") from None
        return repo_name, {
            **inputs,
            "id": repo_name,
            "name": repo_name,
            "arn": repo["repositoryArn"],
            "registryId": repo["registryId"],
            "repositoryUrl": repo["repositoryUri"],
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ecr = ctx.client("ecr")
        mutability = new.get("imageTagMutability", "MUTABLE")
        if old.get("imageTagMutability", "MUTABLE") != mutability:
            ecr.put_image_tag_mutability(repositoryName=id_, imageTagMutability=mutability)
        if self._scanning(old) != self._scanning(new):
            ecr.put_image_scanning_configuration(
                repositoryName=id_, imageScanningConfiguration=self._scanning(new)
            )
        arn = outputs["arn"]
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: ecr.tag_resource(resourceArn=arn, tags=tags),
            lambda keys: ecr.untag_resource(resourceArn=arn, tagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("ecr").delete_repository(
                repositoryName=id_, force=bool(outputs.get("forceDelete"))
            )
        except Exception as exc:
            code = error_code(exc)
            if code == "RepositoryNotFoundException":
                return
            if code == "RepositoryNotEmptyException":
                raise HandlerError(
                    f"repository '{id_}' still holds images: ECR deletes it with them only "
                    "when forceDelete is set"
                ) from None
            raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        ecr = ctx.client("ecr")
        return resource_exists(
            lambda: ecr.describe_repositories(repositoryNames=[id_]), "RepositoryNotFoundException"
        )

    @staticmethod
    def _scanning(inputs: dict[str, Any]) -> dict[str, bool]:
        config = inputs.get("imageScanningConfiguration") or {}
        return {"scanOnPush": bool(config.get("scanOnPush", False))}


HANDLERS: list[Handler] = [Repository()]
