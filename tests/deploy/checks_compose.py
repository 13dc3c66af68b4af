"""Checks of docker-compose.yml, .env.example and the Prometheus and Grafana files it mounts."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path, PurePosixPath

from checks_common import (
    REPO,
    SERVED_PATHS,
    Skip,
    ballast_check,
    check,
    check_output_problem,
    config_references,
    interpolate,
    listen_problems,
    references,
    seconds,
    yaml,
)
from checks_docker import dockerfile, image_file_source

# Services docker-compose.yml must have (SPEC §6) and the only ones that may publish ports.
COMPOSE_SERVICES = {"ballast", "redis", "prometheus", "grafana"}
PUBLISHED = {"ballast", "grafana"}
NETWORK = "internal"


@cache
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port, defaults interpolated."""
    ports = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.append(
                (str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"]))
            )
            continue
        parts = interpolate(port).split("/")[0].rsplit(":", 2)
        parts = [""] * (3 - len(parts)) + parts
        ports.append((parts[0], parts[1], parts[2]))
    return ports


def container_ports(name: str, service: dict) -> set[str]:
    ports = {p for _, _, p in published_ports(service)}
    ports |= {str(p).split("/")[0] for p in service.get("expose") or []}
    listen = compose_env(service).get("BALLAST_LISTEN")
    if listen:
        ports.add(listen.rpartition(":")[2])
    return ports


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, _, rest = interpolate(volume).partition(":")
        if source.startswith((".", "/", "~")):
            mounts.append((source, rest.split(":")[0]))
    return mounts


def mounted_file(service: dict, container_path: str) -> Path | None:
    """The repository path behind a path inside a compose container, if it is bind-mounted."""
    target = PurePosixPath(container_path)
    for host, inside in bind_mounts(service):
        if target == PurePosixPath(inside) or target.is_relative_to(inside):
            return (REPO / host / target.relative_to(inside)).resolve()
    return None


@check("compose: the services of SPEC §6 (ballast, redis, prometheus, grafana)")
def compose_services():
    services = set(compose().get("services") or {})
    missing = COMPOSE_SERVICES - services
    return [f"missing service(s): {', '.join(sorted(missing))}"] if missing else []


@check(f"compose: every service on the private network `{NETWORK}` only")
def compose_network():
    doc = compose()
    problems = []
    if NETWORK not in (doc.get("networks") or {}):
        problems.append(f"no top-level network `{NETWORK}`")
    for name, service in doc["services"].items():
        networks = service.get("networks")
        names = list(networks) if networks else []
        if names != [NETWORK]:
            problems.append(f"{name}: networks {names or '(default)'}, expected [{NETWORK}]")
        if service.get("network_mode"):
            problems.append(f"{name}: network_mode {service['network_mode']}")
    return problems


@check("compose: only ballast and grafana publish ports, on 127.0.0.1 by default")
def compose_ports():
    problems = []
    for name, service in compose()["services"].items():
        ports = published_ports(service)
        if ports and name not in PUBLISHED:
            problems.append(f"{name} publishes {service['ports']}")
        for host_ip, _, _ in ports:
            if host_ip != "127.0.0.1":
                problems.append(f"{name}: a port published on `{host_ip or 'every interface'}`")
    for name, port in (("ballast", "8080"), ("grafana", "3000")):
        service = compose()["services"].get(name, {})
        if port not in [p for _, _, p in published_ports(service)]:
            problems.append(f"{name} does not publish its container port {port}")
    return problems


@check("compose: bind-mounted host paths exist, build contexts have a Dockerfile")
def compose_paths():
    problems = []
    for name, service in compose()["services"].items():
        for host, _ in bind_mounts(service):
            if not (REPO / host).exists():
                problems.append(f"{name}: mounts {host}, which does not exist")
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile_name = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            if not (REPO / context / dockerfile_name).is_file():
                problems.append(f"{name}: build context {context} has no {dockerfile_name}")
    return problems


def env_example_names() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)=", text, re.M))


@check(
    "compose: every variable it reads, and every one the shipped configs read, is in .env.example"
)
def compose_env_documented():
    if not (REPO / ".env.example").exists():
        return [".env.example does not exist"]
    documented = env_example_names()
    text = "\n".join(
        line
        for line in (REPO / "docker-compose.yml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    used = {name for name, _ in references(text)}
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))
    ballast_env = set(compose_env(compose()["services"]["ballast"]))
    for config in sorted((REPO / "config").glob("*.yaml")):
        used |= {n for n, _ in config_references(config.read_text())} - ballast_env
    missing = sorted(used - documented)
    return [f"not documented in .env.example: {', '.join(missing)}"] if missing else []


@check("compose: ballast's default BALLAST_CONFIG is a config the Dockerfile copies")
def compose_default_config():
    image_path = compose_env(compose()["services"]["ballast"]).get("BALLAST_CONFIG")
    if not image_path:
        return ["the ballast service sets no BALLAST_CONFIG"]
    source = image_file_source(dockerfile()[-1], image_path)
    if source is None or not source.is_file():
        return [f"BALLAST_CONFIG defaults to {image_path}, which the Dockerfile does not copy"]
    if source != REPO / "config" / "demo.yaml":
        return [
            f"the default is {source.relative_to(REPO)}, expected the demo config "
            "(`docker compose up` must work without keys)"
        ]
    return []


def shipped_configs() -> list[tuple[str, Path]]:
    """(path in the image, repository file) of every config the image holds."""
    final = dockerfile()[-1]
    found = []
    for config in sorted((REPO / "config").glob("*.yaml")):
        image_path = f"/etc/ballast/{config.name}"
        if image_file_source(final, image_path) == config:
            found.append((image_path, config))
    return found


@check("compose: every shipped config serves on ballast's published port under compose's env")
def compose_configs_listen():
    service = compose()["services"]["ballast"]
    env = compose_env(service)
    port = int(env.get("BALLAST_LISTEN", ":8080").rpartition(":")[2])
    if str(port) not in [p for _, _, p in published_ports(service)]:
        return [f"BALLAST_LISTEN's port {port} is not published"]
    problems = []
    for image_path, config in shipped_configs():
        result = ballast_check(config.read_text(), env, dummies=True)
        problems += check_output_problem(image_path, result) or listen_problems(
            image_path, result, port
        )
    return problems or ([] if shipped_configs() else ["the image ships no config of config/"])


@check("compose: ballast's stop_grace_period is above every shipped config's shutdown_grace")
def compose_stop_grace():
    service = compose()["services"]["ballast"]
    if "stop_grace_period" not in service:
        return ["no stop_grace_period (Docker's default is 10s)"]
    stop = seconds(service["stop_grace_period"])
    problems = []
    for image_path, config in shipped_configs():
        result = ballast_check(config.read_text(), compose_env(service), dummies=True)
        if result.shutdown_grace is None:
            problems.append(f"{image_path}: no shutdown_grace in `ballast check`'s output")
        elif stop <= result.shutdown_grace:
            problems.append(
                f"stop_grace_period {service['stop_grace_period']} is not above "
                f"{image_path}'s shutdown_grace ({result.shutdown_grace:g}s)"
            )
    return problems


@check("compose: depends_on names services, service_healthy ones have a health check")
def compose_depends_on():
    services = compose()["services"]
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for other, spec in depends.items():
            if other not in services:
                problems.append(f"{name} depends on unknown service {other}")
                continue
            if (spec or {}).get("condition") == "service_healthy":
                target = services[other]
                has_check = "healthcheck" in target or (
                    target.get("build") is not None and dockerfile()[-1].all("HEALTHCHECK")
                )
                if not has_check:
                    problems.append(
                        f"{name} waits for {other} to be healthy; it has no health check"
                    )
    return problems


@check("compose: Prometheus scrapes compose services on their container ports, rules mounted")
def compose_prometheus():
    config_path = REPO / "deploy" / "prometheus" / "prometheus.yml"
    if not config_path.exists():
        raise Skip("deploy/prometheus/prometheus.yml does not exist yet")
    services = compose()["services"]
    prometheus = services.get("prometheus", {})
    config = yaml.safe_load(config_path.read_text()) or {}
    problems = []
    if mounted_file(prometheus, "/etc/prometheus/prometheus.yml") != config_path.resolve():
        problems.append(
            "deploy/prometheus/prometheus.yml is not mounted at " "/etc/prometheus/prometheus.yml"
        )
    for rule_file in config.get("rule_files") or []:
        inside = str(PurePosixPath("/etc/prometheus") / rule_file)
        host = mounted_file(prometheus, inside)
        if host is None or not host.exists():
            problems.append(f"rule file {rule_file} ({inside}) is not mounted from the repository")
    targets = 0
    for job in config.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                targets += 1
                host, _, port = target.rpartition(":")
                if host not in services:
                    problems.append(
                        f"job {job.get('job_name')}: target {target} is not a compose service"
                    )
                elif port not in container_ports(host, services[host]):
                    problems.append(
                        f"job {job.get('job_name')}: {host} does not listen on {port} "
                        f"(its ports: {sorted(container_ports(host, services[host]))})"
                    )
                elif host == "ballast" and path not in SERVED_PATHS:
                    problems.append(f"job {job.get('job_name')}: ballast serves no {path}")
    if not any(
        t.rpartition(":")[0] == "ballast"
        for job in config.get("scrape_configs") or []
        for s in job.get("static_configs") or []
        for t in s.get("targets") or []
    ):
        problems.append("no scrape job targets the ballast service")
    return problems


@check("compose: Grafana's data sources and dashboards point at compose services and mounts")
def compose_grafana():
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    files = sorted(provisioning.glob("*/*.y*ml")) if provisioning.exists() else []
    if not files:
        raise Skip("deploy/grafana/provisioning has no files yet")
    services = compose()["services"]
    grafana = services.get("grafana", {})
    problems = []
    for path in files:
        doc = yaml.safe_load(path.read_text()) or {}
        for source in doc.get("datasources") or []:
            match = re.match(r"https?://([^:/]+):(\d+)", source.get("url", ""))
            if not match:
                problems.append(
                    f"{path.name}: data source url {source.get('url')!r} names no host:port"
                )
            elif match.group(1) not in services:
                problems.append(f"{path.name}: {match.group(1)} is not a compose service")
            elif match.group(2) not in container_ports(match.group(1), services[match.group(1)]):
                problems.append(
                    f"{path.name}: {match.group(1)} does not listen on {match.group(2)}"
                )
        for provider in doc.get("providers") or []:
            inside = (provider.get("options") or {}).get("path", "")
            host = mounted_file(grafana, inside)
            if host is None or not host.is_dir():
                problems.append(f"{path.name}: dashboards path {inside} is not mounted")
            elif not list(host.glob("*.json")):
                problems.append(f"{path.name}: {host.relative_to(REPO)} holds no dashboard")
    return problems


@check("compose: the tracing profile's collector receives OTLP/HTTP where its header says to send")
def compose_tracing_profile():
    services = compose().get("services") or {}
    collectors = {n: s for n, s in services.items() if "tracing" in (s.get("profiles") or [])}
    if len(collectors) != 1:
        return [f"expected one service in the `tracing` profile, found {sorted(collectors)}"]
    (name, collector), = collectors.items()
    problems = []
    header = (REPO / "docker-compose.yml").read_text()
    endpoint = f"OTLP_ENDPOINT=http://{name}:4318"
    if endpoint not in header:
        problems.append(f"the file's header does not show {endpoint}")
    if "4318" not in container_ports(name, collector):
        problems.append(f"{name} does not expose 4318 (OTLP/HTTP)")
    mounted = [host for host, target in bind_mounts(collector)]
    configs = [REPO / host for host in mounted if host.endswith(".yaml")]
    if not configs:
        problems.append(f"{name} mounts no collector config")
    for config in configs:
        doc = yaml.safe_load(config.read_text())
        http = (((doc.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http")
        if not http or not str(http.get("endpoint", "")).endswith(":4318"):
            problems.append(f"{config.relative_to(REPO)}: no OTLP/HTTP receiver on :4318")
        traces = (((doc.get("service") or {}).get("pipelines") or {}).get("traces")) or {}
        if "otlp" not in (traces.get("receivers") or []):
            problems.append(f"{config.relative_to(REPO)}: the traces pipeline does not receive otlp")
    if compose_env(services.get("ballast") or {}).get("OTLP_ENDPOINT", None) is None:
        problems.append("ballast's environment does not pass OTLP_ENDPOINT")
    return problems
