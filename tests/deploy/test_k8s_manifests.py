"""deploy/k8s: every overlay renders, validates against the Kubernetes schemas (offline), and every
workload is probed, bounded and locked down; the autoscalers watch what the code really writes."""

from __future__ import annotations

import os
from typing import Any

import pytest
from _manifests import K8S, OVERLAYS, Obj, kubectl, kubectl_render, pod_spec, render

from agentbus.bus.queues import queue_name
from agentbus.bus.routing import listen_order
from agentbus.domain import TaskState
from agentbus.domain.app import TaskOptions
from agentbus.orchestrator.router import route

NAMESPACE = "agentbus"
CRD_GROUPS = ("keda.sh/",)


def rendered(overlay: str) -> list[Obj]:
    """kubectl's kustomize where it exists (the real thing); the pure-Python renderer otherwise."""
    path = K8S / "overlays" / overlay
    return kubectl_render(path) if kubectl() else render(path)


def by_kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


@pytest.fixture(params=OVERLAYS)
def objs(request: pytest.FixtureRequest) -> list[Obj]:
    return rendered(request.param)


def test_there_are_overlays_for_full_cpu_only_and_minimal_clusters() -> None:
    assert {"production", "cpu-only", "minimal"} <= set(OVERLAYS)


def test_the_pure_python_renderer_agrees_with_kubectl() -> None:
    """The fallback used where kubectl is missing renders exactly what kustomize renders."""
    if not kubectl():
        pytest.skip("kubectl is not installed: nothing to compare the fallback renderer with")
    for overlay in OVERLAYS:
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        ours = sorted(render(K8S / "overlays" / overlay), key=key)
        theirs = sorted(kubectl_render(K8S / "overlays" / overlay), key=key)
        assert ours == theirs, overlay


def test_every_object_validates_against_the_kubernetes_schemas(objs: list[Obj]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("kubernetes-validate is not installed (it is in the dev extra)")
    for o in objs:
        if o["apiVersion"].startswith(CRD_GROUPS):
            continue  # not in its schemas: test_keda_objects_are_well_formed checks them
        kubernetes_validate.validate(o, "1.30.0", strict=True)


def test_every_namespaced_object_is_in_the_agentbus_namespace_and_labelled(objs: list[Obj]) -> None:
    for o in objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentbus", o["metadata"]["name"]
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, (o["kind"], o["metadata"]["name"])


def test_every_workload_is_non_root_read_only_without_capabilities_and_bounded(objs: list[Obj]) -> None:
    assert workloads(objs)
    for w in workloads(objs):
        spec = pod_spec(w)
        assert spec is not None
        name = w["metadata"]["name"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), (name, bound)
            # a read-only root: /tmp must be a volume
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), name


def test_every_long_running_role_has_liveness_and_readiness_probes_on_the_health_contract(objs: list[Obj]) -> None:
    """api: /healthz and /readyz on :8000; the others on the metrics port 9090. (The migrate Job is a
    one-shot process: a probe would have nothing to restart or route around.)"""
    for d in by_kind(objs, "Deployment").values():
        (c,) = pod_spec(d)["containers"]  # type: ignore[index]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        role = d["metadata"]["labels"]["app.kubernetes.io/component"]
        want = "http" if role == "api" else "metrics"
        assert ports["metrics"] == 9090
        assert ports.get("http", 8000) == 8000
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": want}, role
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": want}, role
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9090" and annotations["prometheus.io/path"] == "/metrics"
        assert c["args"][:3] == ["run", "--role", role], role
        env_from = {next(iter(e.values()))["name"] for e in c["envFrom"]}
        assert env_from == {"agentbus-config", "agentbus"}, role


def test_two_orchestrators_active_standby_never_both_drained(objs: list[Obj]) -> None:
    orch = by_kind(objs, "Deployment")["agentbus-orchestrator"]
    assert orch["spec"]["replicas"] >= 2
    assert orch["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert by_kind(objs, "PodDisruptionBudget")["agentbus-orchestrator"]["spec"]["minAvailable"] >= 1


def test_every_deployment_has_a_disruption_budget_and_selectors_that_match(objs: list[Obj]) -> None:
    pdbs = by_kind(objs, "PodDisruptionBudget")
    for name, d in by_kind(objs, "Deployment").items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    svc = by_kind(objs, "Service")["agentbus-api"]
    api = by_kind(objs, "Deployment")["agentbus-api"]
    assert svc["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()


def test_the_api_scales_on_cpu(objs: list[Obj]) -> None:
    hpa = by_kind(objs, "HorizontalPodAutoscaler")["agentbus-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "agentbus-api"
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in by_kind(objs, "Deployment")["agentbus-api"]["spec"], "the HPA owns the replica count"


def test_the_migrate_job_runs_agentbus_migrate(objs: list[Obj]) -> None:
    job = by_kind(objs, "Job")["agentbus-migrate"]
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]  # type: ignore[index]


def test_keda_objects_are_well_formed(objs: list[Obj]) -> None:
    """keda.sh CRDs are not in kubernetes-validate's schemas: their structure is checked here."""
    deployments = by_kind(objs, "Deployment")
    auths = by_kind(objs, "TriggerAuthentication")
    for name, so in by_kind(objs, "ScaledObject").items():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        target = so["spec"]["scaleTargetRef"]["name"]
        assert target in deployments, name
        assert "replicas" not in deployments[target]["spec"], f"{target}: KEDA owns the replica count"
        assert 0 <= so["spec"]["minReplicaCount"] < so["spec"]["maxReplicaCount"]
        assert so["spec"]["triggers"]
        for t in so["spec"]["triggers"]:
            assert t["type"] in ("redis", "postgresql", "prometheus"), name
            assert all(isinstance(v, str) for v in t["metadata"].values()), name
            assert t["authenticationRef"]["name"] in auths, name
    for name, ta in auths.items():
        assert ta["apiVersion"] == "keda.sh/v1alpha1"
        for ref in ta["spec"]["secretTargetRef"]:
            assert ref["name"] == "agentbus" and ref["parameter"] and ref["key"], name


def _scaled(objs: list[Obj], name: str) -> Obj | None:
    return by_kind(objs, "ScaledObject").get(name)


def test_cpu_workers_scale_on_the_rq_lists_the_dispatcher_writes(objs: list[Obj]) -> None:
    so = _scaled(objs, "agentbus-worker-cpu")
    if so is None:
        pytest.skip("this overlay has no KEDA: CPU workers have a fixed count")
    lists = {t["metadata"]["listName"] for t in so["spec"]["triggers"]}
    # the keys RQ keeps for the queues a CPU worker listens to (every priority level)
    assert lists == {f"rq:queue:{queue_name(q)}" for q in listen_order(["cpu"])}


def test_gpu_workers_scale_from_zero_on_gpu_calls_that_wait_or_run(objs: list[Obj]) -> None:
    so = _scaled(objs, "agentbus-worker-gpu")
    if so is None:
        assert "agentbus-worker-gpu" not in by_kind(objs, "Deployment")
        pytest.skip("this overlay has no GPU workers")
    assert so["spec"]["minReplicaCount"] == 0
    (trigger,) = so["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    # the states it counts are real, open task states
    counted = {s.strip(" '") for s in query.split("state IN (")[1].split(")")[0].split(",")}
    assert counted == {s.value for s in TaskState if not s.terminal}
    # and the reason the router gives a GPU call that no live worker can take today
    waiting = route(TaskOptions(device="gpu"), workers=[])
    assert waiting.queue is None
    prefix = query.split("route_reason LIKE '")[1].split("%")[0]
    assert waiting.reason.startswith(prefix)
    assert route(TaskOptions(device="gpu", gpu_memory=16 * 2**30), workers=[]).reason.startswith(prefix)

    gpu = by_kind(objs, "Deployment")["agentbus-worker-gpu"]
    spec: Any = pod_spec(gpu)
    (c,) = spec["containers"]
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1 == c["resources"]["limits"]["nvidia.com/gpu"]
    assert "--gpus" not in c["args"], "one process per pod, one GPU per pod"
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert c["image"].split("/")[-1].startswith("agentbus-gpu")


def test_only_the_api_is_reachable_and_roles_reach_only_dns_postgres_and_redis(objs: list[Obj]) -> None:
    policies = by_kind(objs, "NetworkPolicy")
    deny = policies["agentbus-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    for name, p in policies.items():
        for rule in p["spec"].get("ingress", []):
            if "from" not in rule:  # from anywhere: only the API's port
                assert p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api", name
                assert [x["port"] for x in rule["ports"]] == [8000]
        for rule in p["spec"].get("egress", []):
            ports = {x["port"] for x in rule["ports"]}
            if ports <= {53, 5432, 6379}:
                continue
            # the one exception: webhooks from the orchestrator, to public addresses only
            assert p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "orchestrator", name
            assert ports <= {80, 443}
            (block,) = rule["to"]
            assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
                block["ipBlock"]["except"]
            )
