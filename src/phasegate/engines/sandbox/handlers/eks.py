"""EKS clusters and managed node groups.

The emulator creates no instances: a node group is ACTIVE at once. It also accepts any
scaling numbers, so the limits EKS enforces are checked here.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError

__all__ = ["HANDLERS"]

_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
_CAPACITY = ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK")


def _not_found(ctx: CloudContext, exc: Exception) -> bool:
    return isinstance(exc, ctx.client("eks").exceptions.ResourceNotFoundException)


def _logging(types: list[str]) -> dict[str, Any]:
    """The control plane log types to send, as EKS's ``logging`` takes them: every type
    named enabled, every other one disabled."""
    every = ("api", "audit", "authenticator", "controllerManager", "scheduler")
    enabled = [t for t in every if t in types]
    disabled = [t for t in every if t not in types]
    return {
        "clusterLogging": [
            *([{"types": enabled, "enabled": True}] if enabled else []),
            *([{"types": disabled, "enabled": False}] if disabled else []),
        ]
    }


_VPC_CONFIG = (
    "endpointPrivateAccess",
    "endpointPublicAccess",
    "publicAccessCidrs",
    "securityGroupIds",
    "subnetIds",
)
"""The vpcConfig keys EKS's resourcesVpcConfig takes, under the same names."""


_RFC1918 = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def _check_public_cidr(cidr: Any) -> None:
    """EKS takes public IPv4 CIDRs only for who may reach the public endpoint."""
    if not isinstance(cidr, str):
        return  # not known until apply
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError as exc:
        raise HandlerError(
            f"vpcConfig.publicAccessCidrs: '{cidr}' is not an IPv4 CIDR: {exc}"
        ) from None
    if any(network.overlaps(private) for private in _RFC1918):
        raise HandlerError(
            f"vpcConfig.publicAccessCidrs: {cidr} is a private range; EKS takes public ones"
        )


def _vpc_config(vpc: dict[str, Any]) -> dict[str, Any]:
    """resourcesVpcConfig of a cluster's vpcConfig, whole: on an update too, since EKS
    (and the emulator, which replaces what it holds) takes what it is given."""
    config: dict[str, Any] = {
        "subnetIds": list(vpc.get("subnetIds") or []),
        "securityGroupIds": list(vpc.get("securityGroupIds") or []),
        "endpointPrivateAccess": bool(vpc.get("endpointPrivateAccess", False)),
        "endpointPublicAccess": bool(vpc.get("endpointPublicAccess", True)),
    }
    if vpc.get("publicAccessCidrs"):
        config["publicAccessCidrs"] = list(vpc["publicAccessCidrs"])
    return config


_ACCESS = "eks-access-config"
"""The sandbox's own record of each cluster's accessConfig (the emulator keeps none)."""
_AUTH_MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
"""EKS's authentication modes, in the only order a cluster may move through them."""


class Cluster(Handler):
    type = "aws:eks/cluster:Cluster"
    emulates = frozenset(
        {
            "accessConfig.authenticationMode",
            "accessConfig.bootstrapClusterCreatorAdminPermissions",
            "enabledClusterLogTypes",
            "name",
            "roleArn",
            "tags",
            "version",
            *(f"vpcConfig.{key}" for key in _VPC_CONFIG),
        }
    )
    replace_on = frozenset(
        {"name", "roleArn", "accessConfig.bootstrapClusterCreatorAdminPermissions"}
    )
    computed = (
        "id",
        "arn",
        "name",
        "endpoint",
        "status",
        "platformVersion",
        "certificateAuthority",
    )
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        mode = (inputs.get("accessConfig") or {}).get("authenticationMode")
        if mode is not None and mode not in _AUTH_MODES:
            raise HandlerError(
                f"accessConfig.authenticationMode '{mode}' is not one of {', '.join(_AUTH_MODES)}"
            )
        vpc = inputs.get("vpcConfig") or {}
        for cidr in vpc.get("publicAccessCidrs") or []:
            _check_public_cidr(cidr)
        subnets = vpc.get("subnetIds")
        if isinstance(subnets, list) and len(subnets) < 2:
            raise HandlerError(
                "vpcConfig.subnetIds needs subnets in at least two availability zones"
            )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        vpc = inputs.get("vpcConfig") or {}
        cluster_name = self.physical_name(name, inputs, max_len=100)
        args: dict[str, Any] = {
            "name": cluster_name,
            "roleArn": inputs["roleArn"],
            "resourcesVpcConfig": _vpc_config(vpc),
            "tags": dict(inputs.get("tags") or {}),
        }
        if inputs.get("version"):
            args["version"] = str(inputs["version"])
        if inputs.get("enabledClusterLogTypes"):
            args["logging"] = _logging(inputs["enabledClusterLogTypes"])
        cluster = ctx.client("eks").create_cluster(**args)["cluster"]
        if inputs.get("accessConfig"):
            ctx.kept(_ACCESS)[cluster_name] = dict(inputs["accessConfig"])
        return cluster_name, self._outputs(inputs, cluster)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        eks = ctx.client("eks")
        if old.get("vpcConfig") != new.get("vpcConfig"):
            vpc_config = _vpc_config(new.get("vpcConfig") or {})
            eks.update_cluster_config(name=id_, resourcesVpcConfig=vpc_config)
        if old.get("accessConfig") != new.get("accessConfig"):
            self._update_access(ctx, id_, new.get("accessConfig") or {})
        if old.get("enabledClusterLogTypes") != new.get("enabledClusterLogTypes"):
            logging = _logging(new.get("enabledClusterLogTypes") or [])
            eks.update_cluster_config(name=id_, resourcesVpcConfig={}, logging=logging)
        if old.get("version") != new.get("version") and new.get("version"):
            raise HandlerError(
                "changing the Kubernetes version is an upgrade the sandbox cannot rehearse"
            )
        old_tags, new_tags = old.get("tags") or {}, new.get("tags") or {}
        # One key a call: the emulator's UntagResource reads only the first tagKeys value.
        for key in (k for k in old_tags if k not in new_tags):
            eks.untag_resource(resourceArn=outputs["arn"], tagKeys=[key])
        changed = {k: str(v) for k, v in new_tags.items() if old_tags.get(k) != v}
        if changed:
            eks.tag_resource(resourceArn=outputs["arn"], tags=changed)
        return self._outputs(new, eks.describe_cluster(name=id_)["cluster"])

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        eks = ctx.client("eks")
        groups = eks.list_nodegroups(clusterName=id_)["nodegroups"]
        if groups:
            raise HandlerError(f"cluster {id_} still has node groups: {', '.join(groups)}")
        eks.delete_cluster(name=id_)
        ctx.kept(_ACCESS).pop(id_, None)

    @staticmethod
    def _update_access(ctx: CloudContext, id_: str, new: dict[str, Any]) -> None:
        """EKS moves a cluster's authentication mode one way only: CONFIG_MAP, then
        API_AND_CONFIG_MAP, then API."""
        kept = ctx.kept(_ACCESS)
        old_mode = (kept.get(id_) or {}).get("authenticationMode") or "CONFIG_MAP"
        new_mode = new.get("authenticationMode") or old_mode
        if _AUTH_MODES.index(new_mode) < _AUTH_MODES.index(old_mode):
            raise HandlerError(
                f"accessConfig.authenticationMode cannot go back from {old_mode} to {new_mode}"
            )
        kept[id_] = {**(kept.get(id_) or {}), **new, "authenticationMode": new_mode}

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return id_ in ctx.client("eks").list_clusters()["clusters"]

    @staticmethod
    def _outputs(inputs: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
        vpc = cluster.get("resourcesVpcConfig", {})
        return {
            **inputs,
            "id": cluster["name"],
            "name": cluster["name"],
            "arn": cluster["arn"],
            "endpoint": cluster.get("endpoint", ""),
            "status": cluster.get("status", ""),
            "version": cluster.get("version", inputs.get("version", "")),
            "platformVersion": cluster.get("platformVersion", ""),
            "certificateAuthority": {
                "data": cluster.get("certificateAuthority", {}).get("data", "")
            },
            "vpcConfig": {
                **(inputs.get("vpcConfig") or {}),
                "clusterSecurityGroupId": vpc.get("clusterSecurityGroupId", ""),
                "vpcId": vpc.get("vpcId", ""),
            },
        }


class NodeGroup(Handler):
    type = "aws:eks/nodeGroup:NodeGroup"
    emulates = frozenset(
        {
            "amiType",
            "capacityType",
            "clusterName",
            "diskSize",
            "instanceTypes",
            "labels",
            "launchTemplate.id",
            "launchTemplate.name",
            "launchTemplate.version",
            "nodeGroupName",
            "nodeRoleArn",
            "scalingConfig.desiredSize",
            "scalingConfig.maxSize",
            "scalingConfig.minSize",
            "subnetIds",
            "tags",
            "taints.effect",
            "taints.key",
            "taints.value",
        }
    )
    replace_on = frozenset(
        {
            "clusterName",
            "nodeGroupName",
            "nodeRoleArn",
            "subnetIds",
            "instanceTypes",
            "capacityType",
            "amiType",
            "diskSize",
            # A new version of the same template rolls the nodes in place (EKS
            # UpdateNodegroupVersion); another template is another node group.
            "launchTemplate.id",
            "launchTemplate.name",
        }
    )
    computed = ("id", "arn", "status", "nodeGroupName", "resources")
    name_key = "nodeGroupName"

    def validate(self, inputs: dict[str, Any]) -> None:
        scaling = inputs.get("scalingConfig") or {}
        lo, want, hi = (scaling.get(k) for k in ("minSize", "desiredSize", "maxSize"))
        if all(isinstance(v, int) for v in (lo, want, hi)):
            assert isinstance(lo, int) and isinstance(want, int) and isinstance(hi, int)
            if lo < 0 or hi < 1 or not lo <= want <= hi:
                raise HandlerError(
                    f"scalingConfig needs 0 <= minSize <= desiredSize <= maxSize and maxSize >= 1 "
                    f"(got min {lo}, desired {want}, max {hi})"
                )
        types = inputs.get("instanceTypes")
        if isinstance(types, list) and not types:
            raise HandlerError("instanceTypes must name at least one instance type")
        capacity = inputs.get("capacityType", "ON_DEMAND")
        if capacity not in _CAPACITY:
            raise HandlerError(f"capacityType '{capacity}' is not one of {', '.join(_CAPACITY)}")
        for taint in inputs.get("taints") or []:
            if isinstance(taint, dict) and taint.get("effect") not in _EFFECTS:
                raise HandlerError(
                    f"taint {taint.get('key')}: effect '{taint.get('effect')}' is not one of "
                    f"{', '.join(_EFFECTS)}"
                )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        group_name = self.physical_name(name, inputs)
        args: dict[str, Any] = {
            "clusterName": inputs["clusterName"],
            "nodegroupName": group_name,
            "nodeRole": inputs["nodeRoleArn"],
            "subnets": list(inputs.get("subnetIds", [])),
            "scalingConfig": {
                "minSize": inputs["scalingConfig"]["minSize"],
                "maxSize": inputs["scalingConfig"]["maxSize"],
                "desiredSize": inputs["scalingConfig"]["desiredSize"],
            },
            "labels": dict(inputs.get("labels") or {}),
            "taints": [dict(t) for t in inputs.get("taints") or []],
            "tags": dict(inputs.get("tags") or {}),
            "capacityType": inputs.get("capacityType", "ON_DEMAND"),
        }
        for src, dst in (
            ("instanceTypes", "instanceTypes"),
            ("amiType", "amiType"),
            ("diskSize", "diskSize"),
        ):
            if inputs.get(src) is not None:
                args[dst] = inputs[src]
        if inputs.get("launchTemplate"):
            lt = inputs["launchTemplate"]
            args["launchTemplate"] = {k: v for k, v in lt.items() if k in ("id", "name", "version")}
        try:
            group = ctx.client("eks").create_nodegroup(**args)["nodegroup"]
        except Exception as exc:
            raise HandlerError(f"cannot create node group {group_name}: {exc}") from None
        return f"{inputs['clusterName']}:{group_name}", self._outputs(inputs, group)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        eks = ctx.client("eks")
        cluster, group = id_.split(":", 1)
        args: dict[str, Any] = {"clusterName": cluster, "nodegroupName": group}
        if old.get("scalingConfig") != new.get("scalingConfig"):
            args["scalingConfig"] = dict(new["scalingConfig"])
        old_labels, new_labels = old.get("labels") or {}, new.get("labels") or {}
        if old_labels != new_labels:
            args["labels"] = {
                "addOrUpdateLabels": {
                    k: v for k, v in new_labels.items() if old_labels.get(k) != v
                },
                "removeLabels": [k for k in old_labels if k not in new_labels],
            }
        old_taints, new_taints = old.get("taints") or [], new.get("taints") or []
        if old_taints != new_taints:
            args["taints"] = {
                "addOrUpdateTaints": [t for t in new_taints if t not in old_taints],
                "removeTaints": [t for t in old_taints if t not in new_taints],
            }
        if len(args) > 2:
            eks.update_nodegroup_config(**args)
        if (old.get("launchTemplate") or {}).get("version") != (
            (new.get("launchTemplate") or {}).get("version")
        ):
            _roll_to_template_version(ctx, cluster, group, str(new["launchTemplate"]["version"]))
        new_tags = new.get("tags") or {}
        if (old.get("tags") or {}) != new_tags:
            # EKS TagResource/UntagResource on the node group ARN; the emulator's look
            # only among clusters, so a node group is "not found" there.
            node_group = _emulated_node_group(ctx, cluster, group)
            node_group.tags = {k: str(v) for k, v in new_tags.items()}
        described = eks.describe_nodegroup(clusterName=cluster, nodegroupName=group)["nodegroup"]
        return self._outputs(new, described)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        cluster, group = id_.split(":", 1)
        ctx.client("eks").delete_nodegroup(clusterName=cluster, nodegroupName=group)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        cluster, group = id_.split(":", 1)
        try:
            return group in ctx.client("eks").list_nodegroups(clusterName=cluster)["nodegroups"]
        except Exception as exc:
            if _not_found(ctx, exc):
                return False
            raise

    @staticmethod
    def _outputs(inputs: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
        return {
            **inputs,
            "id": f"{group['clusterName']}:{group['nodegroupName']}",
            "nodeGroupName": group["nodegroupName"],
            "arn": group["nodegroupArn"],
            "status": group.get("status", ""),
            "resources": [
                {"autoscalingGroups": group.get("resources", {}).get("autoScalingGroups", [])}
            ],
        }


def _roll_to_template_version(ctx: CloudContext, cluster: str, group: str, version: str) -> None:
    """EKS UpdateNodegroupVersion with a launch template version, which the emulator
    lacks: set it on the emulator's node group, where describe_nodegroup reads it."""
    node_group = _emulated_node_group(ctx, cluster, group)
    node_group.launch_template = {**(node_group.launch_template or {}), "version": version}


def _emulated_node_group(ctx: CloudContext, cluster: str, group: str) -> Any:
    """The emulator's own node group, for the changes its EKS API cannot make."""
    from phasegate.engines.sandbox.emulator import eks_node_group

    try:
        return eks_node_group(ctx.account_id, ctx.region, cluster, group)
    except KeyError:
        raise HandlerError(f"node group {group} of cluster {cluster} does not exist") from None


HANDLERS: list[Handler] = [Cluster(), NodeGroup()]
