"""Checks of deploy/kubernetes: a small schema of its own per kind, then the manifests against
each other and against the gateway (probe paths, ports, its config through `ballast check`)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import PurePosixPath

from checks_common import (
    REPO,
    SERVED_PATHS,
    ballast_check,
    check,
    check_output_problem,
    config_references,
    listen_problems,
    yaml,
)

K8S_DIR = REPO / "deploy" / "kubernetes"
NAMESPACE = "ballast"

KINDS = {
    ("v1", "Namespace"): [],
    ("v1", "ConfigMap"): ["data"],
    ("v1", "Secret"): [],
    ("v1", "Service"): ["spec.selector", "spec.ports"],
    ("apps/v1", "Deployment"): [
        "spec.selector.matchLabels",
        "spec.template.metadata.labels",
        "spec.template.spec.containers",
    ],
    ("autoscaling/v2", "HorizontalPodAutoscaler"): [
        "spec.scaleTargetRef.kind",
        "spec.scaleTargetRef.name",
        "spec.minReplicas",
        "spec.maxReplicas",
        "spec.metrics",
    ],
    ("policy/v1", "PodDisruptionBudget"): ["spec.selector.matchLabels"],
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector.matchLabels", "spec.endpoints"],
}
TOP_LEVEL = {
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "data",
    "stringData",
    "binaryData",
    "type",
    "immutable",
}
POD_SPEC = {
    "volumes",
    "initContainers",
    "containers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "resources",
}
CONTAINER = {
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
}
PROBE = {
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
}
CONTAINER_SECURITY = {
    "capabilities",
    "privileged",
    "seLinuxOptions",
    "windowsOptions",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "procMount",
    "seccompProfile",
    "appArmorProfile",
}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def get(doc, dotted: str):
    for key in dotted.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


@cache
def k8s_files() -> dict[str, list]:
    """Every manifest of deploy/kubernetes, parsed (kustomization.yaml apart)."""
    parsed = {}
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        if path.name != "kustomization.yaml":
            parsed[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return parsed


def k8s_docs(kind: str | None = None, examples: bool = False) -> list[dict]:
    return [
        doc
        for name, docs in k8s_files().items()
        for doc in docs
        if (examples or ".example." not in name) and (kind is None or doc.get("kind") == kind)
    ]


def by_name(kind: str, name: str) -> dict | None:
    return next((d for d in k8s_docs(kind, examples=True) if d["metadata"]["name"] == name), None)


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def gateway() -> tuple[dict, dict]:
    """The gateway's Deployment and its `ballast` container."""
    deployment = by_name("Deployment", "ballast")
    if deployment is None:
        raise AssertionError("no Deployment named ballast")
    containers = get(deployment, "spec.template.spec.containers") or []
    container = next((c for c in containers if c.get("name") == "ballast"), None)
    if container is None:
        raise AssertionError("the ballast Deployment has no container named ballast")
    return deployment, container


def quantity(value) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def prestop_seconds(container: dict) -> float:
    pre_stop = get(container, "lifecycle.preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = get(pre_stop, "exec.command") or []
    if command[:1] == ["sleep"] and len(command) == 2:
        return float(command[1])
    if command[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
        match = re.fullmatch(r"\s*sleep\s+(\d+(?:\.\d+)?)\s*", command[2])
        if match:
            return float(match.group(1))
    return 0.0


@check("kubernetes: every manifest parses, with apiVersion, kind and metadata.name")
def k8s_parse():
    problems = []
    if not k8s_files():
        return ["deploy/kubernetes holds no manifest"]
    for name, docs in k8s_files().items():
        if not docs:
            problems.append(f"{name}: empty")
        for doc in docs:
            if not isinstance(doc, dict):
                problems.append(f"{name}: a document is not a mapping")
                continue
            for field in ("apiVersion", "kind", "metadata.name"):
                if not get(doc, field):
                    problems.append(f"{name}: a document has no {field}")
    return problems


@check("kubernetes: known kinds and apiVersions, required fields, no misspelt fields")
def k8s_schema():
    problems = []
    for name, docs in k8s_files().items():
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            where = f"{name}: {key[1]} {get(doc, 'metadata.name')}"
            if key not in KINDS:
                problems.append(f"{where}: unknown apiVersion/kind {key[0]}/{key[1]}")
                continue
            problems += [f"{where}: unknown top-level field {k}" for k in set(doc) - TOP_LEVEL]
            problems += [f"{where}: no {field}" for field in KINDS[key] if get(doc, field) is None]
            if not DNS_1123.match(str(get(doc, "metadata.name"))):
                problems.append(f"{where}: the name is not a DNS-1123 name")
            if key[1] != "Namespace" and get(doc, "metadata.namespace") not in (None, NAMESPACE):
                problems.append(
                    f"{where}: namespace {get(doc, 'metadata.namespace')}, expected {NAMESPACE}"
                )
            if key[1] == "Namespace" and doc["metadata"]["name"] != NAMESPACE:
                problems.append(f"{where}: expected the namespace {NAMESPACE}")
            if key[1] == "Secret" and not (doc.get("data") or doc.get("stringData")):
                problems.append(f"{where}: no data or stringData")
            if key[1] == "Deployment":
                problems += pod_spec_problems(where, doc)
    return problems


def pod_spec_problems(where: str, deployment: dict) -> list[str]:
    problems = []
    selector = get(deployment, "spec.selector.matchLabels") or {}
    labels = get(deployment, "spec.template.metadata.labels") or {}
    if not selects(selector, labels):
        problems.append(
            f"{where}: spec.selector.matchLabels {selector} does not match the pod "
            f"labels {labels}"
        )
    spec = get(deployment, "spec.template.spec") or {}
    problems += [f"{where}: unknown pod spec field {k}" for k in set(spec) - POD_SPEC]
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for container in spec.get("containers") or []:
        cwhere = f"{where}, container {container.get('name')}"
        problems += [f"{cwhere}: unknown field {k}" for k in set(container) - CONTAINER]
        problems += [f"{cwhere}: no {k}" for k in ("name", "image") if not container.get(k)]
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if probe is not None:
                problems += [
                    f"{cwhere}: {probe_name}: unknown field {k}" for k in set(probe) - PROBE
                ]
                port = get(probe, "httpGet.port") or get(probe, "tcpSocket.port")
                if port is not None and not container_port(container, port):
                    problems.append(
                        f"{cwhere}: {probe_name} names port {port}, not a container port"
                    )
        security = container.get("securityContext") or {}
        problems += [
            f"{cwhere}: securityContext: unknown field {k}"
            for k in set(security) - CONTAINER_SECURITY
        ]
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                problems.append(
                    f"{cwhere}: mounts volume {mount.get('name')}, which is not declared"
                )
        for port in container.get("ports") or []:
            if "name" in port and (len(port["name"]) > 15 or not DNS_1123.match(port["name"])):
                problems.append(f"{cwhere}: port name {port['name']} is not a valid IANA_SVC_NAME")
        resources = container.get("resources") or {}
        for resource in ("cpu", "memory"):
            request = get(resources, f"requests.{resource}")
            limit = get(resources, f"limits.{resource}")
            if request is None or limit is None:
                problems.append(f"{cwhere}: no {resource} request and limit")
            elif quantity(request) > quantity(limit):
                problems.append(f"{cwhere}: {resource} request {request} above its limit {limit}")
    return problems


def container_port(container: dict, port) -> dict | None:
    for declared in container.get("ports") or []:
        if port in (declared.get("name"), declared.get("containerPort")):
            return declared
    return None


@check("kubernetes: kustomization.yaml lists every manifest (secret.example.yaml excepted)")
def k8s_kustomization():
    path = K8S_DIR / "kustomization.yaml"
    if not path.exists():
        return ["deploy/kubernetes/kustomization.yaml does not exist"]
    doc = yaml.safe_load(path.read_text())
    problems = []
    if (doc.get("apiVersion"), doc.get("kind")) != (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    ):
        problems.append("not a kustomize.config.k8s.io/v1beta1 Kustomization")
    if doc.get("namespace") != NAMESPACE:
        problems.append(f"namespace {doc.get('namespace')}, expected {NAMESPACE}")
    listed = doc.get("resources") or []
    manifests = [n for n in k8s_files() if ".example." not in n]
    for name in listed:
        if not (K8S_DIR / name).is_file():
            problems.append(f"lists {name}, which does not exist")
        if ".example." in name:
            problems.append(f"lists {name}: applying it would overwrite the real Secret")
    problems += [f"does not list {name}" for name in manifests if name not in listed]
    if len(set(listed)) != len(listed):
        problems.append("lists a file twice")
    return problems


@check("kubernetes: the gateway container: image, non-root, read-only root, BALLAST_* env")
def k8s_gateway_container():
    deployment, container = gateway()
    problems = []
    pod_security = get(deployment, "spec.template.spec.securityContext") or {}
    security = container.get("securityContext") or {}
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not set")
    if (security.get("runAsUser", pod_security.get("runAsUser")) or 0) == 0:
        problems.append("runAsUser is unset or 0")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if not str(container.get("image", "")).split("/")[-1].startswith("ballast"):
        problems.append(f"image {container.get('image')} is not a ballast image")
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    http = container_port(container, "http")
    if http is None:
        problems.append("no container port named http")
    elif env.get("BALLAST_LISTEN", "").rpartition(":")[2] != str(http["containerPort"]):
        problems.append(
            f"BALLAST_LISTEN={env.get('BALLAST_LISTEN')} is not on the http port "
            f"{http['containerPort']}"
        )
    replicas = get(deployment, "spec.replicas")
    if not isinstance(replicas, int) or replicas < 2:
        problems.append(f"replicas {replicas}, expected at least 2")
    return problems


@check("kubernetes: probes: liveness /healthz and readiness /readyz on the http port")
def k8s_probes():
    _, container = gateway()
    problems = []
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http_get = get(container, f"{probe_name}.httpGet")
        if not http_get:
            problems.append(f"{probe_name} is not an httpGet probe")
            continue
        if http_get.get("path") != path:
            problems.append(f"{probe_name} checks {http_get.get('path')}, expected {path}")
        if http_get.get("path") not in SERVED_PATHS:
            problems.append(f"{probe_name}: the gateway serves no {http_get.get('path')}")
        port = container_port(container, http_get.get("port"))
        if port is None or port.get("name") != "http":
            problems.append(f"{probe_name} does not probe the named port http")
    return problems


def gateway_config() -> tuple[str, dict[str, str]]:
    """The config text the gateway pods load, and the environment they load it in (Secret
    values replaced by placeholders)."""
    deployment, container = gateway()
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    config_path = PurePosixPath(env.get("BALLAST_CONFIG", ""))
    volumes = {v["name"]: v for v in get(deployment, "spec.template.spec.volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if not config_path.is_relative_to(mount["mountPath"]):
            continue
        config_map_name = get(volumes.get(mount["name"], {}), "configMap.name")
        config_map = by_name("ConfigMap", config_map_name) if config_map_name else None
        if config_map is None:
            raise AssertionError(
                f"{config_path} is on volume {mount['name']}, not a ConfigMap here"
            )
        key = str(config_path.relative_to(mount["mountPath"]))
        if key not in (config_map.get("data") or {}):
            raise AssertionError(f"ConfigMap {config_map_name} has no key {key} ({config_path})")
        for source in container.get("envFrom") or []:
            for kind, ref in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if ref in source:
                    other = by_name(kind, source[ref]["name"])
                    if other is None:
                        raise AssertionError(
                            f"envFrom names {kind} {source[ref]['name']}, "
                            "defined in no file here"
                        )
                    keys = list(other.get("data") or {}) + list(other.get("stringData") or {})
                    env.update({k: f"placeholder-{k.lower()}" for k in keys})
        return config_map["data"][key], env
    raise AssertionError(f"BALLAST_CONFIG={config_path or '(unset)'} is not on a mounted volume")


@check("kubernetes: the ConfigMap's config passes `ballast check` with the pod's environment")
def k8s_config_check():
    text, env = gateway_config()
    _, container = gateway()
    result = ballast_check(text, env, dummies=False)
    port = container_port(container, "http")["containerPort"]
    return check_output_problem("ConfigMap ballast.yaml", result) or listen_problems(
        "ConfigMap ballast.yaml", result, port
    )


@check("kubernetes: terminationGracePeriodSeconds > preStop sleep + shutdown_grace")
def k8s_termination_grace():
    deployment, container = gateway()
    text, env = gateway_config()
    result = ballast_check(text, env, dummies=False)
    if result.shutdown_grace is None:
        return ["`ballast check` printed no shutdown_grace"]
    grace = get(deployment, "spec.template.spec.terminationGracePeriodSeconds")
    grace = 30 if grace is None else grace
    pre_stop = prestop_seconds(container)
    problems = []
    if pre_stop <= 0:
        problems.append("no preStop sleep: the pod may get traffic after SIGTERM")
    if grace <= pre_stop + result.shutdown_grace:
        problems.append(
            f"terminationGracePeriodSeconds {grace} <= preStop {pre_stop:g}s + "
            f"shutdown_grace {result.shutdown_grace:g}s"
        )
    return problems


@check("kubernetes: a ConfigMap change reloads without a restart: a sidecar SIGHUPs ballast")
def k8s_config_reloader():
    deployment, container = gateway()
    spec = get(deployment, "spec.template.spec") or {}
    problems = []
    if spec.get("shareProcessNamespace") is not True:
        problems.append("shareProcessNamespace is not true: no sidecar can signal ballast")
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    config_path = env.get("BALLAST_CONFIG") or ""
    mounts = container.get("volumeMounts") or []
    config_mount = next(
        (m for m in mounts if PurePosixPath(config_path).is_relative_to(m["mountPath"])), None
    )
    if config_mount is None:
        return problems + [f"BALLAST_CONFIG={config_path} is not on a mounted volume"]
    if config_mount.get("subPath"):
        problems.append("the config is mounted with subPath, which the kubelet never updates")
    reloader = next(
        (c for c in spec.get("containers") or [] if c.get("name") == "config-reloader"), None
    )
    if reloader is None:
        return problems + ["no container named config-reloader"]
    script = " ".join((reloader.get("command") or []) + (reloader.get("args") or []))
    if config_path not in script:
        problems.append(f"the config-reloader does not watch {config_path}")
    if "kill -HUP" not in script or "ballast" not in script:
        problems.append("the config-reloader does not send SIGHUP to ballast")
    if not any(
        m.get("name") == config_mount["name"] and m.get("mountPath") == config_mount["mountPath"]
        for m in reloader.get("volumeMounts") or []
    ):
        problems.append(f"the config-reloader does not mount {config_mount['name']} where ballast does")
    security = reloader.get("securityContext") or {}
    if security.get("allowPrivilegeEscalation") is not False or security.get(
        "readOnlyRootFilesystem"
    ) is not True:
        problems.append("the config-reloader may escalate privileges or write its root filesystem")
    return problems


@check("kubernetes: scrape annotations and pod spreading for the gateway")
def k8s_scrape_and_spread():
    deployment, container = gateway()
    annotations = get(deployment, "spec.template.metadata.annotations") or {}
    labels = get(deployment, "spec.template.metadata.labels") or {}
    problems = []
    if annotations.get("prometheus.io/scrape") != "true":
        problems.append('no prometheus.io/scrape: "true" annotation')
    if not container_port(container, int(annotations.get("prometheus.io/port", 0))):
        problems.append(
            f"prometheus.io/port {annotations.get('prometheus.io/port')} is not a container port"
        )
    if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        problems.append(
            f"prometheus.io/path {annotations['prometheus.io/path']}, expected /metrics"
        )
    spec = get(deployment, "spec.template.spec")
    spreads = [
        get(c, "labelSelector.matchLabels") for c in spec.get("topologySpreadConstraints") or []
    ]
    anti = get(spec, "affinity.podAntiAffinity") or {}
    for term in (anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []) + [
        t.get("podAffinityTerm")
        for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    ]:
        spreads.append(get(term, "labelSelector.matchLabels"))
    if not spreads:
        problems.append("neither topologySpreadConstraints nor podAntiAffinity")
    problems += [
        f"a spread rule selects {s}, not the gateway pods"
        for s in spreads
        if not selects(s or {}, labels)
    ]
    return problems


@check("kubernetes: Services select a Deployment's pods and target named container ports")
def k8s_services():
    problems = []
    deployments = k8s_docs("Deployment")
    for service in k8s_docs("Service"):
        name = service["metadata"]["name"]
        selector = get(service, "spec.selector") or {}
        matched = [
            d
            for d in deployments
            if selects(selector, get(d, "spec.template.metadata.labels") or {})
        ]
        if not matched:
            problems.append(f"Service {name} selects {selector}: no Deployment's pods")
            continue
        containers = [c for d in matched for c in get(d, "spec.template.spec.containers")]
        for port in get(service, "spec.ports") or []:
            target = port.get("targetPort", port.get("port"))
            if not any(container_port(c, target) for c in containers):
                problems.append(f"Service {name}: targetPort {target} is no container port")
    gateway_service = by_name("Service", "ballast")
    if gateway_service is None:
        problems.append("no Service named ballast")
    else:
        ports = get(gateway_service, "spec.ports") or []
        if not any(
            p.get("name") == "http"
            and p.get("port") == 80
            and p.get("targetPort") in ("http", 8080)
            for p in ports
        ):
            problems.append("Service ballast has no port `http` 80 → 8080")
        if get(gateway_service, "spec.type") not in (None, "ClusterIP"):
            problems.append(f"Service ballast is of type {get(gateway_service, 'spec.type')}")
    return problems


@check("kubernetes: HPA scales the Deployment on CPU, the PDB selects it without blocking drains")
def k8s_hpa_pdb():
    deployment, container = gateway()
    labels = get(deployment, "spec.template.metadata.labels")
    problems = []
    hpas = k8s_docs("HorizontalPodAutoscaler")
    if not hpas:
        problems.append("no HorizontalPodAutoscaler")
    for hpa in hpas:
        ref = get(hpa, "spec.scaleTargetRef")
        if (ref.get("apiVersion"), ref.get("kind")) != ("apps/v1", "Deployment") or by_name(
            "Deployment", ref.get("name")
        ) is None:
            problems.append(f"HPA {hpa['metadata']['name']} targets {ref}, not a Deployment here")
        low, high = get(hpa, "spec.minReplicas"), get(hpa, "spec.maxReplicas")
        if not 1 <= low <= high:
            problems.append(f"HPA min {low} / max {high}")
        for metric in get(hpa, "spec.metrics") or []:
            name = get(metric, "resource.name")
            if (
                metric.get("type") == "Resource"
                and get(container, f"resources.requests.{name}") is None
            ):
                problems.append(
                    f"HPA scales on {name} utilisation but the container requests no {name}"
                )
    pdbs = k8s_docs("PodDisruptionBudget")
    if not pdbs:
        problems.append("no PodDisruptionBudget")
    floor = min(
        [get(h, "spec.minReplicas") for h in hpas] + [get(deployment, "spec.replicas") or 1]
    )
    for pdb in pdbs:
        if not selects(get(pdb, "spec.selector.matchLabels"), labels):
            problems.append(f"PDB {pdb['metadata']['name']} does not select the gateway pods")
        min_available = get(pdb, "spec.minAvailable")
        if isinstance(min_available, int) and min_available >= floor:
            problems.append(
                f"PDB minAvailable {min_available} >= the {floor} replicas: drains block"
            )
    return problems


@check("kubernetes: the ServiceMonitor selects the gateway Service and its port, path /metrics")
def k8s_service_monitor():
    monitors = k8s_docs("ServiceMonitor")
    if not monitors:
        return ["no ServiceMonitor"]
    problems = []
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        services = [
            s
            for s in k8s_docs("Service")
            if selects(get(monitor, "spec.selector.matchLabels"), get(s, "metadata.labels") or {})
        ]
        if [s["metadata"]["name"] for s in services] != ["ballast"]:
            problems.append(
                f"ServiceMonitor {name} selects {[s['metadata']['name'] for s in services]}, "
                "expected the Service ballast alone"
            )
            continue
        namespaces = get(monitor, "spec.namespaceSelector.matchNames")
        if namespaces is not None and NAMESPACE not in namespaces:
            problems.append(f"ServiceMonitor {name} looks in {namespaces}, not {NAMESPACE}")
        ports = {p.get("name") for p in get(services[0], "spec.ports")}
        for endpoint in get(monitor, "spec.endpoints"):
            if endpoint.get("port") not in ports:
                problems.append(
                    f"ServiceMonitor {name}: port {endpoint.get('port')} is not a port of "
                    f"Service ballast ({sorted(ports)})"
                )
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(
                    f"ServiceMonitor {name}: path {endpoint.get('path')}, expected /metrics"
                )
    return problems


@check("kubernetes: secret.example.yaml holds placeholders only, for every key the config needs")
def k8s_secret_example():
    secret = by_name("Secret", "ballast-secrets")
    if secret is None or "secret.example.yaml" not in k8s_files():
        return ["secret.example.yaml with a Secret ballast-secrets does not exist"]
    problems = []
    values = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    for key, value in values.items():
        if not re.search(r"replace|change|example|placeholder", str(value), re.I):
            problems.append(f"{key}: {str(value)[:4]}... does not look like a placeholder")
    text, env = gateway_config()
    for name, has_default in config_references(text):
        if not has_default and name not in env:
            problems.append(f"the config needs ${{{name}}}, set neither by env nor by the Secret")
    return problems
