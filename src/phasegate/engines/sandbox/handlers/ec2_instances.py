"""EC2 instances: launched from an AMI of the emulated cloud into a subnet.

The emulator launches whatever it is asked to (a made-up instance type, an AMI or key
pair that does not exist, an arm64 image on an x86 type), so the checks EC2 makes when
it launches are made here, against the instance types EC2 knows and what the emulated
cloud holds. Changes the provider makes by stopping the instance (its type, user data,
EBS optimisation) stop and start it here too.

Not emulated, so refused by name: what the emulator does not carry (monitoring, tenancy,
CPU and credit options, hibernation, extra block devices, network interfaces, ...).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError, int_or_none
from phasegate.engines.sandbox.handlers.ec2 import _address, _default_group, _missing, _retag
from phasegate.engines.sandbox.handlers.ec2_compute import (
    _check_metadata,
    _check_volume,
    instance_type_info,
)
from phasegate.engines.sandbox.handlers.ec2_launch import (
    attachment,
    deleted_with,
    launch_image,
    launch_subnet,
    root_mapping,
)

__all__ = ["HANDLERS"]

_USER_DATA_LIMIT = 16 * 1024
"""EC2 takes user data up to 16 KB, before base64 encoding."""
_SHUTDOWN = ("stop", "terminate")
_ROOT_KEYS = {"deleteOnTermination", "encrypted", "kmsKeyId", "volumeSize", "volumeType"}
"""What of ``rootBlockDevice`` the emulator carries; the rest is refused."""
_METADATA_API = {
    "httpTokens": "HttpTokens",
    "httpPutResponseHopLimit": "HttpPutResponseHopLimit",
    "httpEndpoint": "HttpEndpoint",
    "httpProtocolIpv6": "HttpProtocolIpv6",
    "instanceMetadataTags": "InstanceMetadataTags",
}
_METADATA_DEFAULTS = {
    "HttpTokens": "optional",
    "HttpPutResponseHopLimit": 1,
    "HttpEndpoint": "enabled",
    "HttpProtocolIpv6": "disabled",
    "InstanceMetadataTags": "disabled",
}
"""What EC2 sets for metadata options the program leaves out."""
_RUNNING_STATES = ("pending", "running", "stopping", "stopped")


def _user_data(inputs: dict[str, Any]) -> bytes | None:
    """The user data as the instance gets it: ``userData`` as text, or the bytes
    ``userDataBase64`` encodes."""
    if inputs.get("userDataBase64"):
        try:
            return base64.b64decode(str(inputs["userDataBase64"]), validate=True)
        except (binascii.Error, ValueError):
            raise HandlerError("userDataBase64 is not valid base64") from None
    if inputs.get("userData"):
        return str(inputs["userData"]).encode()
    return None


def _metadata(options: dict[str, Any] | None) -> dict[str, Any]:
    """Every metadata option, as EC2 takes them: the declared ones, EC2's default else."""
    declared = {_METADATA_API[k]: v for k, v in (options or {}).items() if k in _METADATA_API}
    return {**_METADATA_DEFAULTS, **{k: v for k, v in declared.items() if v is not None}}


class Instance(Handler):
    type = "aws:ec2/instance:Instance"
    emulates = frozenset(
        {
            "ami",
            "associatePublicIpAddress",
            "availabilityZone",
            "disableApiTermination",
            "ebsOptimized",
            "iamInstanceProfile",
            "instanceInitiatedShutdownBehavior",
            "instanceType",
            "keyName",
            *(f"metadataOptions.{key}" for key in _METADATA_API),
            "privateIp",
            *(f"rootBlockDevice.{key}" for key in _ROOT_KEYS),
            "subnetId",
            "tags",
            "userData",
            "userDataBase64",
            "vpcSecurityGroupIds",
        }
    )
    replace_on = frozenset(
        {
            "ami",
            "associatePublicIpAddress",
            "availabilityZone",
            "keyName",
            "privateIp",
            "subnetId",
            "rootBlockDevice.encrypted",
            "rootBlockDevice.kmsKeyId",
        }
    )
    computed = (
        "id",
        "arn",
        "availabilityZone",
        "instanceState",
        "primaryNetworkInterfaceId",
        "privateDns",
        "privateIp",
        "publicDns",
        "publicIp",
        "subnetId",
        "vpcSecurityGroupIds",
    )

    def validate(self, inputs: dict[str, Any]) -> None:
        if "instanceType" in inputs:
            info = instance_type_info(inputs["instanceType"])
            if inputs.get("ebsOptimized") and info["EbsInfo"]["EbsOptimizedSupport"] == (
                "unsupported"
            ):
                raise HandlerError(f"instanceType {inputs['instanceType']} cannot be EBS-optimized")
        if inputs.get("userData") and inputs.get("userDataBase64"):
            raise HandlerError("userData and userDataBase64 cannot both be set")
        data = _user_data(inputs)
        if data is not None and len(data) > _USER_DATA_LIMIT:
            raise HandlerError(f"user data is {len(data)} bytes; EC2 takes at most 16 KB")
        behaviour = inputs.get("instanceInitiatedShutdownBehavior")
        if behaviour is not None and behaviour not in _SHUTDOWN:
            raise HandlerError(
                f"instanceInitiatedShutdownBehavior '{behaviour}' is not stop or terminate"
            )
        if isinstance(inputs.get("metadataOptions"), dict):
            _check_metadata(inputs["metadataOptions"])
        root = inputs.get("rootBlockDevice")
        if isinstance(root, dict):
            unsupported = sorted(
                k for k, v in root.items() if k not in _ROOT_KEYS and v not in (None, "", [], {})
            )
            if unsupported:
                names = ", ".join(f"rootBlockDevice.{k}" for k in unsupported)
                raise HandlerError(f"the sandbox does not emulate {names}")
            _check_volume(root, "rootBlockDevice")
            if root.get("volumeType") in ("st1", "sc1"):
                raise HandlerError(
                    f"rootBlockDevice.volumeType {root['volumeType']} cannot be a boot volume"
                )
            if root.get("volumeType") in ("io1", "io2"):
                raise HandlerError(
                    f"rootBlockDevice.volumeType {root['volumeType']} needs iops, which the "
                    "sandbox does not emulate"
                )
        if inputs.get("privateIp"):
            _address(inputs["privateIp"], "privateIp")

    # -- create ----------------------------------------------------------------------

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        for key in ("ami", "instanceType"):
            if not inputs.get(key):
                raise HandlerError(f"an instance needs {key}")
        ec2 = ctx.client("ec2")
        image = launch_image(ctx, inputs["ami"], inputs["instanceType"])
        subnet = launch_subnet(ec2, inputs)
        if inputs.get("keyName"):
            try:
                ec2.describe_key_pairs(KeyNames=[inputs["keyName"]])
            except Exception:
                raise HandlerError(f"key pair '{inputs['keyName']}' does not exist") from None
        if inputs.get("privateIp"):
            address = _address(inputs["privateIp"], "privateIp")
            network = ipaddress.IPv4Network(subnet["CidrBlock"])
            reserved = {*list(network)[:4], network.broadcast_address}
            if address not in network or address in reserved:
                raise HandlerError(
                    f"privateIp {address} is not an address of subnet {subnet['SubnetId']} "
                    f"({network}, less the 4 first and the last, which AWS keeps)"
                )
        placement = {
            "SubnetId": subnet["SubnetId"],
            "SecurityGroupIds": list(inputs.get("vpcSecurityGroupIds") or [])
            or [_default_group(ec2, subnet["VpcId"])],
            "PrivateIpAddress": inputs.get("privateIp"),
        }
        args: dict[str, Any] = {
            "ImageId": inputs["ami"],
            "InstanceType": inputs["instanceType"],
            "MinCount": 1,
            "MaxCount": 1,
            "MetadataOptions": _metadata(inputs.get("metadataOptions")),
            "EbsOptimized": bool(inputs.get("ebsOptimized")),
            "InstanceInitiatedShutdownBehavior": inputs.get("instanceInitiatedShutdownBehavior")
            or "stop",
            "BlockDeviceMappings": [root_mapping(image, inputs.get("rootBlockDevice"))],
            **attachment(placement, inputs.get("associatePublicIpAddress")),
        }
        optional = {
            "KeyName": inputs.get("keyName"),
            "UserData": _user_data(inputs),
            "IamInstanceProfile": self._profile(inputs.get("iamInstanceProfile")),
        }
        args.update({k: v for k, v in optional.items() if v})
        if inputs.get("tags"):
            args["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": self.tag_list(inputs["tags"])}
            ]
        try:
            instance = ec2.run_instances(**args)["Instances"][0]
        except Exception as exc:
            raise HandlerError(f"cannot launch the instance: {exc}") from None
        instance_id = instance["InstanceId"]
        if inputs.get("disableApiTermination"):
            ec2.modify_instance_attribute(
                InstanceId=instance_id, DisableApiTermination={"Value": True}
            )
        return instance_id, self._outputs(ctx, instance_id, inputs)

    @staticmethod
    def _profile(profile: Any) -> dict[str, str] | None:
        """The instance profile, which the provider takes by name."""
        return {"Name": str(profile)} if profile else None

    # -- update ----------------------------------------------------------------------

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        if new.get("instanceType") != old.get("instanceType"):
            launch_image(ctx, outputs.get("ami") or new["ami"], new["instanceType"])
        stopping = {
            "InstanceType": new.get("instanceType") != old.get("instanceType"),
            "UserData": _user_data(new) != _user_data(old),
            "EbsOptimized": bool(new.get("ebsOptimized")) != bool(old.get("ebsOptimized")),
        }
        if any(stopping.values()):  # as the provider: stop, change, start again
            ec2.stop_instances(InstanceIds=[id_])
            if stopping["InstanceType"]:
                ec2.modify_instance_attribute(
                    InstanceId=id_, InstanceType={"Value": new["instanceType"]}
                )
            if stopping["UserData"]:
                ec2.modify_instance_attribute(
                    InstanceId=id_, UserData={"Value": _user_data(new) or b""}
                )
            if stopping["EbsOptimized"]:
                ec2.modify_instance_attribute(
                    InstanceId=id_, EbsOptimized={"Value": bool(new.get("ebsOptimized"))}
                )
            ec2.start_instances(InstanceIds=[id_])
        if bool(new.get("disableApiTermination")) != bool(old.get("disableApiTermination")):
            ec2.modify_instance_attribute(
                InstanceId=id_,
                DisableApiTermination={"Value": bool(new.get("disableApiTermination"))},
            )
        behaviour = new.get("instanceInitiatedShutdownBehavior") or "stop"
        if behaviour != (old.get("instanceInitiatedShutdownBehavior") or "stop"):
            ec2.modify_instance_attribute(
                InstanceId=id_, Attribute="instanceInitiatedShutdownBehavior", Value=behaviour
            )
        if _metadata(new.get("metadataOptions")) != _metadata(old.get("metadataOptions")):
            ec2.modify_instance_metadata_options(
                InstanceId=id_, **_metadata(new.get("metadataOptions"))
            )
        if new.get("vpcSecurityGroupIds") and new.get("vpcSecurityGroupIds") != old.get(
            "vpcSecurityGroupIds"
        ):
            # The groups are the primary network interface's, where the provider sets them.
            groups = list(new["vpcSecurityGroupIds"])
            primary = outputs.get("primaryNetworkInterfaceId") or self._primary(ec2, id_)
            ec2.modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=groups)
            ec2.modify_instance_attribute(InstanceId=id_, Groups=groups)
        if new.get("iamInstanceProfile") != old.get("iamInstanceProfile"):
            self._swap_profile(ec2, id_, new.get("iamInstanceProfile"))
        self._change_root(ec2, id_, old.get("rootBlockDevice"), new.get("rootBlockDevice"))
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self._outputs(ctx, id_, new)

    def _swap_profile(self, ec2: Any, id_: str, profile: Any) -> None:
        """The instance's profile: the one it has let go, then the declared one taken
        (which leaves EC2's record of the instance and of its association alike)."""
        found = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [id_]}]
        )["IamInstanceProfileAssociations"]
        try:
            for association in found:
                ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
            if profile:
                ec2.associate_iam_instance_profile(
                    IamInstanceProfile=self._profile(profile), InstanceId=id_
                )
        except Exception as exc:
            raise HandlerError(f"cannot set the instance profile of {id_}: {exc}") from None

    @staticmethod
    def _change_root(ec2: Any, id_: str, old: Any, new: Any) -> None:
        """A root volume's size and type change in place (a volume only grows), and so
        does whether it goes with the instance."""
        old, new = old or {}, new or {}
        if deleted_with(old) != deleted_with(new):
            device = Instance._described(ec2, id_)["RootDeviceName"]
            ec2.modify_instance_attribute(
                InstanceId=id_,
                BlockDeviceMappings=[
                    {"DeviceName": device, "Ebs": {"DeleteOnTermination": deleted_with(new)}}
                ],
            )
        size, kind = int_or_none(new.get("volumeSize")), new.get("volumeType")
        if size == int_or_none(old.get("volumeSize")) and kind == old.get("volumeType"):
            return
        volume = Instance._root_volume(ec2, id_)
        if size is not None and size < volume["Size"]:
            raise HandlerError(
                f"rootBlockDevice.volumeSize {size} GiB is smaller than the volume's "
                f"{volume['Size']} GiB: a volume only grows"
            )
        args: dict[str, Any] = {"VolumeId": volume["VolumeId"]}
        if size is not None and size != volume["Size"]:
            args["Size"] = size
        if kind and kind != volume["VolumeType"]:
            args["VolumeType"] = kind
        if len(args) > 1:
            ec2.modify_volume(**args)

    @staticmethod
    def _described(ec2: Any, id_: str) -> dict[str, Any]:
        found: dict[str, Any] = ec2.describe_instances(InstanceIds=[id_])["Reservations"][0][
            "Instances"
        ][0]
        return found

    @staticmethod
    def _root_volume(ec2: Any, id_: str) -> dict[str, Any]:
        instance = Instance._described(ec2, id_)
        root = next(
            m
            for m in instance["BlockDeviceMappings"]
            if m["DeviceName"] == instance.get("RootDeviceName")
        )
        volume: dict[str, Any] = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])[
            "Volumes"
        ][0]
        return volume

    # -- delete, exists, outputs -----------------------------------------------------

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            # As the provider does: termination protection off, then terminate.
            ec2.modify_instance_attribute(InstanceId=id_, DisableApiTermination={"Value": False})
            ec2.terminate_instances(InstanceIds=[id_])
        except Exception as exc:
            if not _missing(exc):
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            found = ctx.client("ec2").describe_instances(InstanceIds=[id_])["Reservations"]
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        states = [i["State"]["Name"] for r in found for i in r["Instances"]]
        return any(state in _RUNNING_STATES for state in states)

    @staticmethod
    def _primary(ec2: Any, id_: str) -> str:
        instance = Instance._described(ec2, id_)
        return str(Instance._interface(instance)["NetworkInterfaceId"])

    @staticmethod
    def _interface(instance: dict[str, Any]) -> dict[str, Any]:
        """The instance's primary network interface (device 0)."""
        interfaces = instance.get("NetworkInterfaces") or []
        primary: dict[str, Any] = next(
            (i for i in interfaces if i.get("Attachment", {}).get("DeviceIndex") == 0),
            interfaces[0] if interfaces else {},
        )
        return primary

    @staticmethod
    def _outputs(ctx: CloudContext, id_: str, inputs: dict[str, Any]) -> dict[str, Any]:
        ec2 = ctx.client("ec2")
        instance = Instance._described(ec2, id_)
        primary = Instance._interface(instance)
        return {
            **inputs,
            "id": id_,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:instance/{id_}",
            "availabilityZone": instance["Placement"]["AvailabilityZone"],
            "instanceState": instance["State"]["Name"],
            "primaryNetworkInterfaceId": primary.get("NetworkInterfaceId", ""),
            "privateDns": instance.get("PrivateDnsName", ""),
            "privateIp": instance.get("PrivateIpAddress", ""),
            "publicDns": instance.get("PublicDnsName") or "",
            "publicIp": instance.get("PublicIpAddress") or "",
            "subnetId": instance.get("SubnetId", ""),
            "vpcSecurityGroupIds": sorted(g["GroupId"] for g in primary.get("Groups", [])),
        }


HANDLERS: list[Handler] = [Instance()]
