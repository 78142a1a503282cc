"""ECR and SSM: a container repository and the parameters that tell others where its
images are, changed in place and replaced."""

from __future__ import annotations

from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

repo = aws.ecr.Repository(
    "app",
    image_tag_mutability="MUTABLE" if stage == 1 else "IMMUTABLE",
    image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
        scan_on_push=stage == 2
    ),
    encryption_configurations=[
        aws.ecr.RepositoryEncryptionConfigurationArgs(
            encryption_type="AES256" if stage == 1 else "KMS"
        )
    ],
    force_delete=True,
    tags={"team": "platform"},
)

# Not a secret: insecure_value, where value would make the URL a secret of the run.
url = aws.ssm.Parameter(
    "repository-url",
    name="/corpus/registry/url",
    type="String",
    insecure_value=repo.repository_url,
    description="where the app's images are",
    tags={"team": "platform"},
)

channels = aws.ssm.Parameter(
    "channels",
    name="/corpus/registry/channels",
    type="StringList",
    value="stable" if stage == 1 else "stable,beta",
    tier="Standard" if stage == 1 else "Advanced",
    allowed_pattern="^[a-z,]+$",
)

release = aws.ssm.Parameter(
    "release",
    name="/corpus/registry/release" if stage == 1 else "/corpus/registry/current-release",
    type="String",
    insecure_value="v1" if stage == 1 else "v2",
)

pulumi.export("repository", repo.name)
pulumi.export("repository_url", repo.repository_url)
pulumi.export("parameters", [url.name, channels.name, release.name])
"""


def _parameter(ssm: Any, name: str) -> dict[str, Any]:
    value = ssm.get_parameter(Name=name)["Parameter"]
    (described,) = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
        "Parameters"
    ]
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    return {**described, **value, "Tags": {t["Key"]: t["Value"] for t in tags}}


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    ecr, ssm = aws("ecr"), aws("ssm")
    (repo,) = ecr.describe_repositories(repositoryNames=[outputs["repository"]])["repositories"]
    assert repo["repositoryUri"] == outputs["repository_url"]
    assert repo["imageTagMutability"] == ("MUTABLE" if stage == 1 else "IMMUTABLE")
    assert repo["imageScanningConfiguration"] == {"scanOnPush": stage == 2}
    assert repo["encryptionConfiguration"]["encryptionType"] == ("AES256" if stage == 1 else "KMS")
    tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "platform"}
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert (
        names.count(outputs["repository"]) == 1
        and len([n for n in names if n.startswith("app-")]) == 1
    )  # the stage 1 repository was replaced, not kept

    release_name = "/corpus/registry/release" if stage == 1 else "/corpus/registry/current-release"
    assert outputs["parameters"] == [
        "/corpus/registry/url",
        "/corpus/registry/channels",
        release_name,
    ]
    url = _parameter(ssm, "/corpus/registry/url")
    assert (url["Type"], url["Value"]) == ("String", outputs["repository_url"])
    assert url["Description"] == "where the app's images are"
    assert url["Tags"] == {"team": "platform"}

    channels = _parameter(ssm, "/corpus/registry/channels")
    assert channels["Type"] == "StringList"
    assert channels["Value"] == ("stable" if stage == 1 else "stable,beta")
    assert channels["Tier"] == ("Standard" if stage == 1 else "Advanced")
    assert channels["AllowedPattern"] == "^[a-z,]+$"
    assert channels["Tags"] == {}

    release = _parameter(ssm, release_name)
    assert (release["Type"], release["Value"]) == ("String", "v1" if stage == 1 else "v2")
    listed = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": ["/corpus/registry"]}]
    )["Parameters"]
    assert sorted(p["Name"] for p in listed) == sorted(outputs["parameters"])


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    repositories = aws("ecr").describe_repositories()["repositories"]
    assert outputs["repository"] not in {r["repositoryName"] for r in repositories}
    listed = aws("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": ["/corpus"]}]
    )["Parameters"]
    assert listed == []
