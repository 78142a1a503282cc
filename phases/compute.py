"""compute: production GPU capacity on the pilot's cluster, and its front door.

Training nodes share one cluster placement group (one zone, lowest latency) and talk
over EFA where the instance type has it; inference nodes are spot capacity across zones.
Each pool goes only into zones that offer all of its instance types (``placement``).
The Kubernetes side (namespaces, the NVIDIA device plugin, priority classes and GPU
quotas) goes to the pilot's cluster through a provider built from its outputs.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from common import environment, load_config, phase_tags, upstream
from config import GpuQuotas
from nodes import POOL_LABEL, gpu_launch_template, gpu_node_group, node_role
from placement import Offerings, placed_subnets, placed_zones

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
GPU_RESOURCE = "nvidia.com/gpu"
# Higher preempts lower; both stay far below the system classes (2 000 000 000).
PRIORITY_CLASSES = {
    "training-preemptible": (1_000, "Never", "Training jobs: yield GPUs to inference."),
    "inference-critical": (100_000, "PreemptLowerPriority", "Serving: may preempt training."),
}

_meta = k8s.meta.v1.ObjectMetaArgs
_core = k8s.core.v1


def _kubeconfig(name: str, endpoint: str, ca: str) -> str:
    """A kubeconfig that signs in with the caller's AWS identity (`aws eks get-token`)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", name],
                        }
                    },
                }
            ],
        }
    )


def _device_plugin(opts: pulumi.ResourceOptions) -> k8s.apps.v1.DaemonSet:
    """NVIDIA's device plugin on every GPU node: advertises `nvidia.com/gpu` to the scheduler."""
    labels = {"name": "nvidia-device-plugin-ds"}
    return k8s.apps.v1.DaemonSet(
        "nvidia-device-plugin",
        metadata=_meta(name="nvidia-device-plugin-daemonset", namespace="kube-system"),
        spec=k8s.apps.v1.DaemonSetSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
            template=_core.PodTemplateSpecArgs(
                metadata=_meta(labels=labels),
                spec=_core.PodSpecArgs(
                    priority_class_name="system-node-critical",
                    tolerations=[
                        _core.TolerationArgs(
                            key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"
                        )
                    ],
                    # Only phasegate's GPU pools carry the pool label.
                    affinity=_core.AffinityArgs(
                        node_affinity=_core.NodeAffinityArgs(
                            required_during_scheduling_ignored_during_execution=_core.NodeSelectorArgs(
                                node_selector_terms=[
                                    _core.NodeSelectorTermArgs(
                                        match_expressions=[
                                            _core.NodeSelectorRequirementArgs(
                                                key=POOL_LABEL, operator="Exists"
                                            )
                                        ]
                                    )
                                ]
                            )
                        )
                    ),
                    containers=[
                        _core.ContainerArgs(
                            name="nvidia-device-plugin-ctr",
                            image=DEVICE_PLUGIN_IMAGE,
                            env=[_core.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="false")],
                            security_context=_core.SecurityContextArgs(
                                allow_privilege_escalation=False,
                                capabilities=_core.CapabilitiesArgs(drop=["ALL"]),
                            ),
                            volume_mounts=[
                                _core.VolumeMountArgs(
                                    name="device-plugin",
                                    mount_path="/var/lib/kubelet/device-plugins",
                                )
                            ],
                        )
                    ],
                    volumes=[
                        _core.VolumeArgs(
                            name="device-plugin",
                            host_path=_core.HostPathVolumeSourceArgs(
                                path="/var/lib/kubelet/device-plugins"
                            ),
                        )
                    ],
                ),
            ),
        ),
        opts=opts,
    )


def _kubernetes(provider: k8s.Provider, quotas: GpuQuotas, env: str) -> dict[str, Any]:
    """Namespaces, GPU quotas, priority classes and the device plugin; returns export names."""
    opts = pulumi.ResourceOptions(provider=provider)
    limits = {"training": quotas.training, "inference": quotas.inference}
    namespaces = {}
    for name, limit in limits.items():
        namespaces[name] = _core.Namespace(
            f"ns-{name}",
            metadata=_meta(
                name=name,
                labels={"phasegate.io/environment": env, "phasegate.io/workload": name},
            ),
            opts=opts,
        )
        _core.ResourceQuota(
            f"gpu-quota-{name}",
            metadata=_meta(name="gpu-quota", namespace=namespaces[name].metadata.name),
            spec=_core.ResourceQuotaSpecArgs(hard={f"requests.{GPU_RESOURCE}": str(limit)}),
            opts=opts,
        )
    for name, (value, preemption, description) in PRIORITY_CLASSES.items():
        k8s.scheduling.v1.PriorityClass(
            name,
            metadata=_meta(name=name),
            value=value,
            preemption_policy=preemption,
            global_default=False,
            description=description,
            opts=opts,
        )
    plugin = _device_plugin(opts)
    return {
        "namespaces": [ns.metadata.name for ns in namespaces.values()],
        "gpu_quotas": limits,
        "priority_classes": list(PRIORITY_CLASSES),
        "device_plugin": plugin.metadata.name,
    }


def program() -> None:
    cfg = load_config("compute")
    env = environment()
    tags = phase_tags("compute", cfg)
    pilot = upstream("pilot")
    cluster_name = pilot.get_output("cluster_name")
    subnets = pilot.get_output("private_subnet_ids")
    zones = pilot.get_output("private_subnet_zones")
    offerings = Offerings([*cfg.training_pool.instance_types, *cfg.inference_pool.instance_types])
    # A cluster placement group lives in one zone: the training pool uses the subnet of
    # the first zone that offers its types; inference every subnet whose zone offers all.
    training_subnets = placed_subnets(
        "training_pool", cfg.training_pool, offerings, subnets, zones, one_zone=True
    )
    inference_subnets = placed_subnets(
        "inference_pool", cfg.inference_pool, offerings, subnets, zones
    )

    role, attachments = node_role(tags)

    placement = aws.ec2.PlacementGroup(
        "gpu-training-placement", name=f"{env}-gpu-training", strategy="cluster", tags=tags
    )
    training_template = gpu_launch_template(
        "gpu-training",
        template_name=f"{env}-gpu-training",
        pool=cfg.training_pool,
        tags=tags,
        placement_group=placement,
        efa_security_group_ids=(
            [pilot.get_output("eks_security_group_id")] if cfg.training_pool.efa else None
        ),
    )
    training = gpu_node_group(
        "gpu-training",
        role="training",
        pool=cfg.training_pool,
        cluster_name=cluster_name,
        node_role_arn=role.arn,
        subnet_ids=training_subnets,
        launch_template=training_template,
        tags=tags,
        depends_on=attachments,
    )

    inference_template = gpu_launch_template(
        "gpu-inference", template_name=f"{env}-gpu-inference", pool=cfg.inference_pool, tags=tags
    )
    inference = gpu_node_group(
        "gpu-inference",
        role="inference",
        pool=cfg.inference_pool,
        cluster_name=cluster_name,
        node_role_arn=role.arn,
        subnet_ids=inference_subnets,
        launch_template=inference_template,
        tags=tags,
        depends_on=attachments,
    )

    lb_sg = aws.ec2.SecurityGroup(
        "inference-lb-sg",
        name=f"{env}-inference-lb",
        description="inference load balancer: HTTPS in, to the VPC out",
        vpc_id=pilot.get_output("vpc_id"),
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                description="HTTPS from clients",
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=["0.0.0.0/0"],
            )
        ],
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                description="to inference pods",
                protocol="-1",
                from_port=0,
                to_port=0,
                cidr_blocks=[pilot.get_output("vpc_cidr")],
            )
        ],
        tags={**tags, "phasegate:role": "load-balancer", "Name": f"{env}-inference-lb"},
    )
    front_door = aws.lb.LoadBalancer(
        "inference",
        name=f"{env.replace('_', '-')}-inference",
        internal=True,
        load_balancer_type="network",
        subnets=subnets,
        security_groups=[lb_sg.id],
        tags=tags,
    )

    provider = k8s.Provider(
        "cluster",
        kubeconfig=pulumi.Output.all(
            cluster_name, pilot.get_output("cluster_endpoint"), pilot.get_output("cluster_ca")
        ).apply(lambda args: _kubeconfig(*args)),
    )
    kube = _kubernetes(provider, cfg.gpu_quotas, env)

    pulumi.export("cluster_name", cluster_name)
    pulumi.export("training_node_group", training.node_group_name)
    pulumi.export("training_launch_template", training_template.name)
    pulumi.export("inference_launch_template", inference_template.name)
    pulumi.export("inference_node_group", inference.node_group_name)
    pulumi.export("placement_group", placement.name)
    pulumi.export("training_efa", cfg.training_pool.efa)
    pulumi.export(
        "training_zones", placed_zones(cfg.training_pool, offerings, zones, one_zone=True)
    )
    pulumi.export("inference_zones", placed_zones(cfg.inference_pool, offerings, zones))
    pulumi.export("inference_dns", front_door.dns_name)
    pulumi.export("inference_lb_security_group_id", lb_sg.id)
    for name, value in kube.items():
        pulumi.export(name, value)
