"""The Kubernetes manifests build and validate without a cluster.

Every overlay is built with a real kustomize (kubectl's built-in one; `infra/tools/install-kubectl.sh`
installs it), every object is validated against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields fail, as with `kubectl apply`), the RayJob against the KubeRay CRD schema
kept in `k8s/schemas/`, and its pod templates against Kubernetes' PodTemplateSpec. Then the
things a schema cannot see: references that must resolve, settings the pods will read, GPU knobs,
probes and scrape annotations. Last, docs/deploy.md is held to the same manifests.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes minor the manifests promise to work on (autoscaling/v2, seccompProfile, ...).
KUBERNETES_VERSION = "1.29.0"
RAYJOB_SCHEMA = K8S / "schemas" / "rayjob.ray.io_v1.yaml"
VA_IMAGES = ("va-worker", "va-annotation", "va-scoring")
# Secrets an operator creates before applying prod (docs/deploy.md); no secret value lives in the repo.
PROD_EXTERNAL_SECRETS = {"va-annotation", "va-annotation-tls"}


def kustomize_command() -> list[str]:
    """A kustomize v5: the standalone binary, or kubectl's built-in one."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    for kubectl in (shutil.which("kubectl"), "/usr/local/bin/kubectl", str(Path.home() / ".local/bin/kubectl")):
        if not kubectl or not Path(kubectl).exists():
            continue
        version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, check=False)
        if "Kustomize Version: v5" in version.stdout:
            return [kubectl, "kustomize"]
    pytest.fail("no kustomize v5 found: run infra/tools/install-kubectl.sh (kubectl 1.33 with kustomize v5.6)")


def build(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*kustomize_command(), str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kustomize build of {overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(name, objects) of one overlay, built once per module."""
    return request.param, build(request.param)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod template) of every workload, RayJob head and worker groups included."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield name, obj["spec"]["template"]
        elif obj["kind"] == "RayJob":
            cluster = obj["spec"]["rayClusterSpec"]
            yield f"{name} head", cluster["headGroupSpec"]["template"]
            for group in cluster.get("workerGroupSpecs", []):
                yield f"{name} workers {group['groupName']}", group["template"]


def rayjob(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "RayJob", "va-ingest")


# -- build and schemas -------------------------------------------------------


def test_overlay_holds_every_component(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    kinds = {
        (o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] == "ConfigMap" else o["metadata"]["name"])
        for o in objects
    }
    for wanted in [
        ("RayJob", "va-ingest"),
        ("Deployment", "va-annotation"),
        ("Service", "va-annotation"),
        ("Ingress", "va-annotation"),
        ("Deployment", "va-scoring"),
        ("Service", "va-scoring"),
        ("HorizontalPodAutoscaler", "va-scoring"),
        ("ConfigMap", "va-config"),
        ("PersistentVolumeClaim", "va-model-store"),
        ("ServiceAccount", "va"),
    ]:
        assert wanted in kinds, f"{name} lacks {wanted}"
    namespaces = {o["metadata"].get("namespace") for o in objects}
    assert namespaces == {"va-dev" if name == "dev" else "va"}
    statefulsets = {o["metadata"]["name"] for o in by_kind(objects, "StatefulSet")}
    if name == "dev":
        assert statefulsets == {"postgres", "minio"}
    else:
        # prod: PostgreSQL is an external URL and no secret value is in the repository.
        assert statefulsets == set()
        assert by_kind(objects, "Secret") == []


def test_every_object_validates_against_kubernetes_schemas(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    checked = 0
    for obj in objects:
        if obj["kind"] == "RayJob":
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 9


def test_kubernetes_validation_rejects_a_broken_object() -> None:
    """The strict check is not vacuous: a probe written at the wrong level fails it."""
    deployment = copy.deepcopy(one(build("dev"), "Deployment", "va-scoring"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["path"] = "/livez"
    with pytest.raises(kubernetes_validate.ValidationError, match="'path' was unexpected"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def rayjob_validator() -> jsonschema.Draft7Validator:
    schema = yaml.safe_load(RAYJOB_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate_rayjob(job: dict[str, Any]) -> None:
    """The RayJob against the KubeRay CRD schema, its pod templates against Kubernetes' own."""
    rayjob_validator().validate(job)
    for where, template in pod_templates([job]):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
        try:
            kubernetes_validate.validate(wrapped, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.message}") from None


def test_rayjob_validates_against_the_kuberay_crd_schema(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    validate_rayjob(rayjob(objects))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda j: j["spec"].update(shutdownAfterJobFinish=True), "shutdownAfterJobFinish"),
        (
            lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
            "is not of type 'string'",
        ),
        (lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
        (lambda j: j["spec"].update(submissionMode="K8sJob"), "K8sJob"),
        (
            lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(
                resource={}
            ),
            "'resource' was unexpected",
        ),
    ],
    ids=["misspelt-field", "int-start-param", "no-group-name", "bad-submission-mode", "bad-pod-field"],
)
def test_rayjob_validation_rejects_broken_jobs(change: Any, message: str) -> None:
    job = copy.deepcopy(rayjob(build("prod")))
    change(job)
    with pytest.raises((jsonschema.ValidationError, AssertionError)) as err:
        validate_rayjob(job)
    assert message in str(err.value)


# -- what a schema cannot see --------------------------------------------------


def test_references_resolve(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """ConfigMaps, Secrets, claims, service accounts, Services and HPA targets all exist (hash suffixes included)."""
    name, objects = overlay
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    external = PROD_EXTERNAL_SECRETS if name == "prod" else set()
    for where, template in pod_templates(objects):
        spec = template["spec"]
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", spec["serviceAccountName"]) in names, where
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, where
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    ref = source.get(key)
                    if ref and not ref.get("optional"):
                        assert (kind, ref["name"]) in names or ref["name"] in external, f"{where}: {kind} {ref}"
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in names or ref["name"] in external, f"{where}: {ref}"
    for tls in (t for ing in by_kind(objects, "Ingress") for t in ing["spec"].get("tls", [])):
        assert ("Secret", tls["secretName"]) in names or tls["secretName"] in external
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for service in by_kind(objects, "Service"):
        selector = service["spec"]["selector"].items()
        matched = [w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert matched, f"Service {service['metadata']['name']} selects no pods"
        ports = {p["name"] for w in matched for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {service['metadata']['name']} targets {port['targetPort']}"
    for ingress in by_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert ("Service", path["backend"]["service"]["name"]) in names
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) in names


def container_env(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment a container starts with; values from Secrets stand in as placeholders."""
    env: dict[str, str] = {}
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind(objects, "ConfigMap")}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = {"VA_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/va"}.get(item["name"], "secret")
    return env


def test_pods_environment_is_valid_settings(
    overlay: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every VA_* variable a pod gets is a known setting with a valid value: the pod would start."""
    from annotator_core.settings import load_settings

    _, objects = overlay
    for where, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            if not any(image in container["image"] for image in VA_IMAGES):
                continue
            env = container_env(objects, container)
            for key in [k for k in os.environ if k.startswith("VA_")]:
                monkeypatch.delenv(key)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            settings = load_settings()
            assert settings.lancedb_uri.startswith("s3://"), where
            assert Path(settings.resolved_model_store) == Path(env["BENTOML_HOME"]), where
            if template["spec"].get("volumes") and container["name"] in ("annotation", "scoring"):
                # The shared volume is the models/ folder only: BentoML's Prometheus files under
                # BENTOML_HOME must stay per pod, or replicas overwrite each other's metrics.
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                claims = {v["name"] for v in template["spec"]["volumes"] if "persistentVolumeClaim" in v}
                assert mounts[str(settings.resolved_model_store / "models")] in claims, where
                assert mounts[str(settings.resolved_model_store)] not in claims, where


def test_gpu_knobs_and_autoscaling(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    job = rayjob(objects)
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["va", "ingest"] and argv[-1].startswith("s3://")
    # The options are real `va ingest` options; `--address auto` because the driver runs inside the
    # cluster with RAY_ADDRESS set (tests/infra/test_ray_cluster.py runs it so).
    from va_cli.ingest import ingest

    params = ingest.make_context("ingest", argv[2:]).params
    assert params["address"] == "auto"
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    (group,) = cluster["workerGroupSpecs"]
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    pod = group["template"]["spec"]
    requests = pod["containers"][0]["resources"]["requests"]
    gpus = int(requests.get("nvidia.com/gpu", 0))
    configmap = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("va-config"))
    concurrency = int(configmap["data"].get("VA_EMBED_CONCURRENCY", "1"))
    if name == "prod":
        assert gpus == 1
        assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        # Each embedding actor holds one GPU; more actors than GPUs the group can reach would wait forever.
        assert 1 <= concurrency <= group["maxReplicas"] * gpus
    else:
        assert gpus == 0 and "tolerations" not in pod
    head = cluster["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0", "ingest work belongs on the workers, not the head"


def test_scoring_probes_and_prometheus_scrape(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    template = one(objects, "Deployment", "va-scoring")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {str(p["containerPort"]) for p in container["ports"]}
    assert annotations["prometheus.io/port"] in ports


def test_annotation_readiness_checks_its_stores(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    (container,) = one(objects, "Deployment", "va-annotation")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health"
    assert "tcpSocket" in container["livenessProbe"], "a database outage must not restart every replica"


def test_images_are_pinned_and_pods_run_as_non_root(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    for where, template in pod_templates(objects):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for container in spec["containers"]:
            image = container["image"]
            assert re.search(r":[\w.\-]+$", image) and not image.endswith(":latest"), f"{where}: {image}"
            assert image.split("/")[-1].split(":")[0] in {*VA_IMAGES, "postgres", "minio"}, image
            assert "/" in image or image.startswith("postgres:"), f"{where}: placeholder image {image} not replaced"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


def test_ray_version_matches_the_project_and_the_worker_image() -> None:
    import ray

    job = yaml.safe_load((K8S / "base" / "ingest-rayjob.yaml").read_text())
    ray_version = job["spec"]["rayClusterSpec"]["rayVersion"]
    assert ray_version == ray.__version__
    dockerfile = (ROOT / "infra" / "docker" / "Dockerfile.worker").read_text()
    assert f"ARG RAY_VERSION={ray_version}" in dockerfile


def test_storage_options_are_json_objects(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    data = next(o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("va-config"))["data"]
    options = json.loads(data["VA_STORAGE_OPTIONS"])
    assert isinstance(options, dict) and all(isinstance(v, str) for v in options.values())


def test_the_annotation_readiness_path_is_a_route_of_the_service(make_settings: Any) -> None:
    """The probe path in the manifest is served by the real app (without login)."""
    from fastapi.testclient import TestClient

    from serving.annotation.app import create_app

    path = yaml.safe_load_all((K8S / "base" / "annotation.yaml").read_text())
    (deployment,) = (d for d in path if d["kind"] == "Deployment")
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
    with TestClient(create_app(make_settings())) as client:
        assert client.get(probe).status_code == 200


# -- docs/deploy.md cannot rot: the files it names exist, its `va` commands parse, its selectors split ----

DOC = (ROOT / "docs" / "deploy.md").read_text()


def code_lines() -> list[str]:
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", DOC, flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_deploy_doc_names_files_that_exist() -> None:
    paths = set(re.findall(r"`((?:infra|k8s|serving|scripts|benchmarks|docs)/[\w./-]*\w)", DOC))
    assert len(paths) >= 10
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/deploy.md names files that do not exist: {missing}"


@pytest.mark.parametrize("line", [line for line in code_lines() if re.search(r"(^|\s|#\s+)va (ingest|users)", line)])
def test_deploy_doc_va_commands_parse(line: str) -> None:
    from va_cli.main import cli

    start = re.search(r"\bva (ingest|users)\b", line)
    assert start is not None
    argv = shlex.split(line[start.start() :].split("#")[0])
    group = cli.get_command(click.Context(cli), argv[1])
    assert group is not None, line
    args = argv[2:]
    if isinstance(group, click.Group):
        group, args = group.get_command(click.Context(group), args[0]), args[1:]
        assert group is not None, line
    group.make_context(argv[1], args)


def test_apply_selectors_split_the_rayjob_from_the_rest() -> None:
    """`kubectl apply -l 'app.kubernetes.io/name=va-ingest'` selects the RayJob and nothing else."""
    assert "-l 'app.kubernetes.io/name=va-ingest'" in DOC and "-l 'app.kubernetes.io/name!=va-ingest'" in DOC
    for overlay in ("dev", "prod"):
        selected = [
            o["kind"]
            for o in build(overlay)
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "va-ingest"
        ]
        assert selected == ["RayJob"], overlay
