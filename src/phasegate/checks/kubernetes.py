"""The ``kubernetes`` check: GPU nodes Ready with ``nvidia.com/gpu`` allocatable, and the
NVIDIA device plugin's DaemonSet ready, asked of the cluster the environment's kubeconfig
names.

phasegate does not depend on the ``kubernetes`` Python client: this talks to the API
server with urllib and signs in the way the kubeconfig says (a bearer token or token file,
a client certificate, basic auth, or an exec credential plugin such as the
``aws eks get-token`` that EKS kubeconfigs use). The sandbox has no cluster: there the
check is ``skipped`` with that reason, never passed.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from phasegate.checks.base import CheckContext, CheckError, CheckKind, Params, Probe

__all__ = ["GPU_RESOURCE", "SANDBOX_REASON", "Kubernetes", "KubernetesParams"]

GPU_RESOURCE = "nvidia.com/gpu"
SANDBOX_REASON = (
    "the sandbox has no Kubernetes cluster: GPU nodes and the device plugin are not checked"
)
_PLUGIN_TIMEOUT = 60.0
"""Seconds an exec credential plugin may take."""


class KubernetesParams(Params):
    """GPU nodes and the device plugin, as the cluster's API server reports them."""

    min_gpus: int = Field(
        1, ge=0, description=f"at least this much {GPU_RESOURCE} allocatable on Ready GPU nodes"
    )
    node_selector: str | None = Field(
        None,
        description="label selector of the GPU nodes (e.g. phasegate.io/pool); "
        f"default: the nodes whose capacity has {GPU_RESOURCE}",
    )
    device_plugin: str | None = Field(
        "nvidia-device-plugin-daemonset",
        description="the device plugin DaemonSet that must be ready; null: not checked",
    )
    device_plugin_namespace: str = Field("kube-system", description="its namespace")
    context: str | None = Field(None, description="kubeconfig context; default: current-context")
    request_timeout: float = Field(10.0, gt=0, description="seconds per API request")


@dataclass(frozen=True)
class _Api:
    """GET on one API server as one user."""

    server: str
    headers: Mapping[str, str]
    tls: ssl.SSLContext | None
    timeout: float

    def get(self, path: str, **query: str) -> dict[str, Any] | None:
        """The JSON at ``path``; None when the API server answers 404."""
        url = self.server.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(
            url, headers={"Accept": "application/json", **self.headers}
        )
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.tls))
        try:
            with opener.open(request, timeout=self.timeout) as answer:
                found: dict[str, Any] = json.load(answer)
                return found
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            try:
                reason = json.loads(exc.read(4096)).get("message", exc.reason)
            except ValueError:
                reason = exc.reason
            raise CheckError(
                f"the API server answered GET {path} with {exc.code}: {reason}"
            ) from None
        except urllib.error.URLError as exc:
            raise CheckError(f"cannot reach the API server {self.server}: {exc.reason}") from None


def _named(config: Mapping[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry)
    raise CheckError(f"kubeconfig {path} has no {section[:-1]} named '{name}'")


def _relative(base: Path, path: str) -> str:
    return str(base / Path(path).expanduser())


def _exec_credential(spec: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Run an exec credential plugin; its ExecCredential status (token or client cert)."""
    command = str(spec.get("command", ""))
    if "/" in command:
        command = _relative(base, command)
    env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1beta1"),
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
    )
    try:
        done = subprocess.run(
            [command, *(str(a) for a in spec.get("args") or [])],
            env=env,
            capture_output=True,
            text=True,
            timeout=_PLUGIN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise CheckError(
            f"the kubeconfig's credential plugin '{command}' is not installed"
        ) from None
    except subprocess.TimeoutExpired:
        raise CheckError(
            f"credential plugin '{command}' gave no credential in {_PLUGIN_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CheckError(f"credential plugin '{command}' exited {done.returncode}: {last}")
    try:
        status: dict[str, Any] = json.loads(done.stdout)["status"]
    except (ValueError, KeyError, TypeError):
        raise CheckError(
            f"credential plugin '{command}' printed no ExecCredential status"
        ) from None
    return status


def _connect(kubeconfig: str, context: str | None, timeout: float) -> _Api:
    """How to reach the API server of ``context`` (default: the current one) and sign in."""
    path = Path(kubeconfig).expanduser()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckError(f"cannot read the kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CheckError(f"the kubeconfig {path} is not YAML: {exc}") from None
    if not isinstance(config, Mapping):
        raise CheckError(f"the kubeconfig {path} is not a mapping")
    name = context or config.get("current-context")
    if not name:
        raise CheckError(f"the kubeconfig {path} has no current-context: give context")
    chosen = _named(config, "contexts", name, path).get("context") or {}
    cluster = _named(config, "clusters", chosen.get("cluster", ""), path).get("cluster") or {}
    user = (
        _named(config, "users", chosen["user"], path).get("user") or {}
        if chosen.get("user")
        else {}
    )
    server = str(cluster.get("server", ""))
    if not server.startswith(("https://", "http://")):
        raise CheckError(f"the kubeconfig {path} names no server for context '{name}'")
    base = path.parent
    if user.get("exec"):
        user = {**user, **_credential_fields(_exec_credential(user["exec"], base))}
    headers: dict[str, str] = {}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        token = Path(_relative(base, user["tokenFile"])).read_text(encoding="utf-8").strip()
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif user.get("auth-provider"):
        provider = user["auth-provider"].get("name", "?")
        raise CheckError(f"kubeconfig auth-provider '{provider}' is not supported: use exec")
    tls = _tls(cluster, user, base) if server.startswith("https://") else None
    return _Api(server, headers, tls, timeout)


def _credential_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if status.get("token"):
        fields["token"] = status["token"]
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        fields["client-certificate-data"] = base64.b64encode(
            status["clientCertificateData"].encode()
        ).decode()
        fields["client-key-data"] = base64.b64encode(status["clientKeyData"].encode()).decode()
    return fields


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        tls = ssl.create_default_context(cadata=ca)
    elif cluster.get("certificate-authority"):
        tls = ssl.create_default_context(cafile=_relative(base, cluster["certificate-authority"]))
    else:
        tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    cert, key = _pem(user, "client-certificate", base), _pem(user, "client-key", base)
    if cert and key:
        # load_cert_chain reads files only: data from the kubeconfig goes through a
        # private temp dir that is gone once the context holds the key.
        with tempfile.TemporaryDirectory(prefix="phasegate-kube-") as tmp:
            cert_file, key_file = Path(tmp, "client.crt"), Path(tmp, "client.key")
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            tls.load_cert_chain(cert_file, key_file)
    return tls


def _pem(user: Mapping[str, Any], field: str, base: Path) -> bytes | None:
    if user.get(f"{field}-data"):
        return base64.b64decode(user[f"{field}-data"])
    if user.get(field):
        return Path(_relative(base, user[field])).read_bytes()
    return None


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _gpus(node: Mapping[str, Any], what: str) -> int:
    value = node.get("status", {}).get(what, {}).get(GPU_RESOURCE, "0")
    try:
        return int(str(value))
    except ValueError:
        name = node.get("metadata", {}).get("name", "?")
        raise CheckError(f"node {name}: {what} {GPU_RESOURCE} is {value!r}, not a count") from None


class Kubernetes(CheckKind):
    name = "kubernetes"
    params = KubernetesParams

    def probe(self, params: KubernetesParams, ctx: CheckContext) -> Probe:
        if ctx.sandbox:
            return Probe.skip(SANDBOX_REASON)
        if not ctx.kubeconfig:
            raise CheckError(
                f"environment {ctx.environment} has no kubeconfig, so its cluster cannot be asked"
            )
        api = _connect(ctx.kubeconfig, params.context, params.request_timeout)
        query = {"labelSelector": params.node_selector} if params.node_selector else {}
        nodes = (api.get("/api/v1/nodes", **query) or {}).get("items", [])
        if not params.node_selector:
            nodes = [n for n in nodes if _gpus(n, "capacity") > 0]
        ready = [n for n in nodes if _ready(n)]
        not_ready = [n.get("metadata", {}).get("name", "?") for n in nodes if not _ready(n)]
        allocatable = sum(_gpus(n, "allocatable") for n in ready)
        problems = []
        if not_ready:
            problems.append(f"GPU node(s) not Ready: {', '.join(not_ready)}")
        if allocatable < params.min_gpus:
            problems.append(
                f"{allocatable} {GPU_RESOURCE} allocatable on {len(ready)} Ready GPU node(s), "
                f"expected at least {params.min_gpus}"
            )
        held = [f"{len(ready)} GPU node(s) Ready, {allocatable} {GPU_RESOURCE} allocatable"]
        if params.device_plugin:
            found, text = self._plugin(api, params)
            (held if found else problems).append(text)
        if problems:
            return Probe(False, "; ".join(problems))
        return Probe(True, "; ".join(held))

    @staticmethod
    def _plugin(api: _Api, params: KubernetesParams) -> tuple[bool, str]:
        where = f"DaemonSet {params.device_plugin_namespace}/{params.device_plugin}"
        daemonset = api.get(
            f"/apis/apps/v1/namespaces/{params.device_plugin_namespace}/daemonsets/"
            f"{params.device_plugin}"
        )
        if daemonset is None:
            return False, f"{where} does not exist"
        status = daemonset.get("status", {})
        desired, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
        if desired == 0 and params.min_gpus > 0:
            return False, f"{where} is scheduled on no node"
        if ready < desired:
            return False, f"{where}: {ready} of {desired} pod(s) ready"
        return True, f"{where}: {ready}/{desired} ready"
