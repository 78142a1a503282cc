"""Kubernetes objects, rendered as manifests: the sandbox has no cluster to apply them to.

The sandbox keeps each object in its store, keyed by API version, kind, namespace and
name; the manifests under ``.phasegate/sandbox/<env>/kubernetes/`` are written from it.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError

__all__ = ["MANIFEST"]

_KIND = "kubernetes"


class Manifest(Handler):
    type = "kubernetes:*"
    replace_on = frozenset({"apiVersion", "kind"})
    computed = ("id",)
    delete_before_replace = True
    emulated = True
    emulates_every_input = True  # the object is kept whole, as its manifest

    def validate(self, inputs: dict[str, Any]) -> None:
        if not inputs.get("kind") or not inputs.get("apiVersion"):
            raise HandlerError("a Kubernetes object needs apiVersion and kind")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        meta = dict(inputs.get("metadata") or {})
        meta.setdefault("name", name)
        manifest = {**inputs, "metadata": meta}
        id_ = self._id(manifest)
        store = ctx.kept(_KIND)
        if id_ in store:
            raise HandlerError(f"{id_} already exists")
        store[id_] = manifest
        return id_, {**manifest, "id": id_}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        meta = {**(new.get("metadata") or {}), "name": outputs["metadata"]["name"]}
        manifest = {**new, "metadata": meta}
        ctx.kept(_KIND)[id_] = manifest
        return {**manifest, "id": id_}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.kept(_KIND).pop(id_, None)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return id_ in ctx.kept(_KIND)

    @staticmethod
    def _id(manifest: dict[str, Any]) -> str:
        meta = manifest["metadata"]
        namespace = meta.get("namespace") or "_cluster"
        return f"{namespace}/{manifest['kind']}/{meta['name']}"


MANIFEST = Manifest()
