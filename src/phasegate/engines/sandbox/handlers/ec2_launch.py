"""Where and from what an EC2 instance launches: its image, its subnet, its root volume
and its primary network interface, as EC2 picks them when the program leaves them out
and checks them when it names them (the emulator checks none of it)."""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, HandlerError, int_or_none
from phasegate.engines.sandbox.handlers.ec2_compute import instance_type_info

__all__ = ["attachment", "deleted_with", "launch_image", "launch_subnet", "root_mapping"]


def launch_image(ctx: CloudContext, ami: str, instance_type: str) -> dict[str, Any]:
    """The AMI, from the emulated cloud (its catalogue of public AMIs loaded first);
    HandlerError if there is none, or the instance type cannot run it."""
    from phasegate.engines.sandbox.emulator import load_ami_catalogue

    load_ami_catalogue(ctx.account_id, ctx.region)
    try:
        image: dict[str, Any] = ctx.client("ec2").describe_images(ImageIds=[ami])["Images"][0]
    except Exception:
        raise HandlerError(f"AMI '{ami}' does not exist in {ctx.region}") from None
    info = instance_type_info(instance_type)
    architectures = info["ProcessorInfo"]["SupportedArchitectures"]
    if image.get("Architecture") not in architectures:
        raise HandlerError(
            f"AMI {ami} is {image.get('Architecture')}; instanceType {instance_type} "
            f"runs {', '.join(architectures)}"
        )
    virtualization = image.get("VirtualizationType")
    if virtualization and virtualization not in info["SupportedVirtualizationTypes"]:
        raise HandlerError(
            f"AMI {ami} is {virtualization}; instanceType {instance_type} does not run it"
        )
    return image


def launch_subnet(ec2: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The declared subnet, or (as EC2 picks) a default subnet of the default VPC, in
    the declared availability zone if there is one."""
    zone = inputs.get("availabilityZone")
    if inputs.get("subnetId"):
        try:
            found: dict[str, Any] = ec2.describe_subnets(SubnetIds=[inputs["subnetId"]])["Subnets"][
                0
            ]
        except Exception:
            raise HandlerError(f"subnet '{inputs['subnetId']}' does not exist") from None
        if zone and zone != found["AvailabilityZone"]:
            raise HandlerError(
                f"availabilityZone {zone} is not the zone of subnet {inputs['subnetId']} "
                f"({found['AvailabilityZone']})"
            )
        return found
    defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    subnets = sorted(defaults["Subnets"], key=lambda s: s["AvailabilityZone"])
    subnets = [s for s in subnets if not zone or s["AvailabilityZone"] == zone]
    if not subnets:
        raise HandlerError(
            f"no subnetId and no default subnet{f' in {zone}' if zone else ''} "
            "to launch the instance into"
        )
    return subnets[0]


def deleted_with(root: dict[str, Any]) -> bool:
    """Whether the root volume goes with the instance: the provider's default, yes."""
    return root.get("deleteOnTermination") is not False


def root_mapping(image: dict[str, Any], root: dict[str, Any] | None) -> dict[str, Any]:
    """The root volume, on the AMI's root device: the declared size and type, else
    the AMI's own, as EC2 makes it."""
    root = root or {}
    device = image.get("RootDeviceName") or "/dev/xvda"
    mappings = image.get("BlockDeviceMappings", [])
    own: dict[str, Any] = next(
        (m.get("Ebs", {}) for m in mappings if m.get("DeviceName") == device), {}
    )
    ebs: dict[str, Any] = {
        "VolumeSize": int_or_none(root.get("volumeSize")) or own.get("VolumeSize") or 8,
        "VolumeType": root.get("volumeType") or own.get("VolumeType") or "gp3",
        "DeleteOnTermination": deleted_with(root),
    }
    if root.get("encrypted"):
        ebs["Encrypted"] = True
    if root.get("kmsKeyId"):
        ebs["KmsKeyId"] = root["kmsKeyId"]
    return {"DeviceName": device, "Ebs": ebs}


def attachment(placement: dict[str, Any], public_ip: Any) -> dict[str, Any]:
    """Where the instance is attached. A public address is asked for on the primary
    network interface, which then carries the subnet, groups and address, as the
    provider launches it; else they are the launch's own."""
    if public_ip is None:
        return {k: v for k, v in placement.items() if v}
    interface = {
        "DeviceIndex": 0,
        "AssociatePublicIpAddress": bool(public_ip),
        "DeleteOnTermination": True,
        "SubnetId": placement["SubnetId"],
        "Groups": placement["SecurityGroupIds"],
    }
    if placement["PrivateIpAddress"]:
        interface["PrivateIpAddress"] = placement["PrivateIpAddress"]
    return {"NetworkInterfaces": [interface]}
