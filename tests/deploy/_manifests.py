"""Rendering deploy/k8s overlays: with kubectl's kustomize where it is installed, else with ``render``,
a small pure-Python renderer of the kustomize features these manifests use (resources, components,
namespace, labels, images, JSON 6902 patches). A test checks the two agree wherever kubectl exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
CLUSTER_SCOPED = {"Namespace"}
_SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "patches"}

Obj = dict[str, Any]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def kubectl_render(path: Path) -> list[Obj]:
    exe = kubectl()
    assert exe is not None
    out = subprocess.run([exe, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render(path: Path) -> list[Obj]:
    k = _load(path)
    objs = _resources(path, k)
    for c in k.get("components", []):
        ck = _load(path / c)
        objs = _transform(ck, objs + _resources(path / c, ck))
    return _transform(k, objs)


def _load(path: Path) -> Obj:
    k: Obj = yaml.safe_load((path / "kustomization.yaml").read_text())
    unknown = set(k) - _SUPPORTED
    assert not unknown, f"{path}: the pure-Python renderer does not know {unknown}: teach it, or use kubectl"
    return k


def _resources(path: Path, k: Obj) -> list[Obj]:
    objs: list[Obj] = []
    for r in k.get("resources", []):
        p = path / r
        objs += render(p) if p.is_dir() else [d for d in yaml.safe_load_all(p.read_text()) if d]
    return objs


def pod_spec(obj: Obj) -> Obj | None:
    spec: Obj | None = obj.get("spec", {}).get("template", {}).get("spec")
    return spec


def _transform(k: Obj, objs: list[Obj]) -> list[Obj]:
    for obj in objs:
        meta = obj.setdefault("metadata", {})
        if "namespace" in k and obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = k["namespace"]
        for entry in k.get("labels", []):
            assert not entry.get("includeSelectors") and not entry.get("includeTemplates")
            meta.setdefault("labels", {}).update(entry["pairs"])
        spec = pod_spec(obj)
        for c in [*(spec or {}).get("containers", []), *(spec or {}).get("initContainers", [])]:
            name, _, tag = c["image"].partition(":")
            for img in k.get("images", []):
                if img["name"] == name:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}".rstrip(":")
    for p in k.get("patches", []):
        target = p["target"]
        for obj in objs:
            if obj["kind"] == target["kind"] and obj["metadata"]["name"] == target["name"]:
                for op in yaml.safe_load(p["patch"]):
                    _json_patch(obj, op)
    return objs


def _json_patch(obj: Obj, op: Obj) -> None:
    *parents, last = op["path"].strip("/").split("/")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op["op"] == "remove":
        del node[last]
    elif op["op"] in ("add", "replace"):
        node[last] = op["value"]
    else:
        raise AssertionError(f"unsupported patch op {op['op']!r}")
