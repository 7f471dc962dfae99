"""The deployment kit stays in step with the code: the Kubernetes manifests validate against the Kubernetes schemas
and agree with the server's real settings (ports, health service names, drain timing, config and secret paths); the
Dockerfile installs like the Makefile and checks health with the gRPC service; compose.yaml runs the same commands.
No container engine or cluster here: the files are parsed, rendered and cross-checked."""

from __future__ import annotations

import copy
import inspect
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from realauth_server.cli import build_parser
from realauth_server.clock import Clock
from realauth_server.config import Settings, load_settings
from realauth_server.providers.base import ProviderContext
from realauth_server.server import SERVICE_NAME, serve
from realauth_server.vendors.registry import KINDS, VENDORS

from .conftest import ROOT

KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBE / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
#: The oldest Kubernetes the kit supports (native gRPC probes are GA since 1.27) and the newest schema shipped.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: What SIGTERM handling needs beyond the drain and the grace: closing the HTTP side, providers and the store.
SHUTDOWN_MARGIN = 5.0


# --- a small kustomize: resources, images and RFC 6902 patches, and nothing else --------------------------------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "images", "patches"}


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add / replace / remove, as kustomize applies a ``patches`` entry whose patch is a list of ops."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        kind = op["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, op["value"])
            elif kind == "replace":
                node[index] = op["value"]
            elif kind == "remove":
                del node[index]
            else:
                raise AssertionError(f"unsupported patch op {kind}")
        else:
            if kind in ("replace", "remove"):
                assert last in node, f"{op['path']} does not exist"
            if kind in ("add", "replace"):
                node[last] = op["value"]
            elif kind == "remove":
                del node[last]
            else:
                raise AssertionError(f"unsupported patch op {kind}")
    return doc


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k DIR` would send, for the subset of kustomize the kit uses (anything else fails)."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(k) <= KUSTOMIZATION_KEYS, f"{directory}: kustomize features this test does not render: {set(k)}"
    assert k["kind"] == "Kustomization"
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        target = (directory / entry).resolve()
        docs += kustomize(target) if target.is_dir() else load_yaml_docs(target)
    for patch in k.get("patches", []):
        assert set(patch) == {"target", "patch"}, patch
        matched = [
            i
            for i, d in enumerate(docs)
            if d["kind"] == patch["target"]["kind"] and d["metadata"]["name"] == patch["target"]["name"]
        ]
        assert len(matched) == 1, f"{directory}: patch target {patch['target']} matches {len(matched)} resources"
        docs[matched[0]] = json_patch(docs[matched[0]], yaml.safe_load(patch["patch"]))
    for image in k.get("images", []):
        hits = 0
        for d in docs:
            for c in pod_spec(d).get("containers", []) if pod_spec(d) else []:
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
                    hits += 1
        assert hits, f"{directory}: image {image['name']} is used by no container"
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"{directory}: duplicate resources {names}"
    return docs


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet"):
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


# --- the manifests are valid Kubernetes ------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_file_validates_strictly(version: str) -> None:
    files = manifest_files()
    assert len(files) >= 10
    for path in files:
        for doc in load_yaml_docs(path):
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_validates_strictly(overlay: str, version: str) -> None:
    docs = kustomize(KUBE / "overlays" / overlay)
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceAccount",
    } <= kinds


def test_overlays_are_the_ones_documented() -> None:
    assert OVERLAYS == ["production", "sandbox"]
    sandbox = kustomize(KUBE / "overlays" / "sandbox")
    assert find(sandbox, "StatefulSet", "realauth-redis") and find(sandbox, "Secret", "realauth-secrets")
    production = kustomize(KUBE / "overlays" / "production")
    assert not [d for d in production if d["kind"] in ("StatefulSet", "Secret")]  # managed Redis, Secret out of band
    assert find(production, "Deployment", "realauth")["spec"]["replicas"] == 3


# --- the manifests agree with the server -----------------------------------------------------------------------------


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    deployment: dict[str, Any]
    container: dict[str, Any]
    settings: Settings
    secret_keys: set[str]
    secret_mount: str
    referenced: set[str]


def server_drain() -> float:
    """The drain `realauth serve` waits between NOT_SERVING and stopping the listeners (server.serve)."""
    return float(inspect.signature(serve).parameters["drain"].default)


def render(overlay: str, tmp_path: Path) -> Rendered:
    docs = kustomize(KUBE / "overlays" / overlay)
    deployment = find(docs, "Deployment", "realauth")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}

    # The ConfigMap holds the file `--config` names, at the path the volume puts it.
    args = build_parser().parse_args(container["args"])
    config_mount = mounts["config"]
    config_map = find(docs, "ConfigMap", volumes["config"]["configMap"]["name"])
    (key,) = config_map["data"]
    assert args.command == "serve" and args.config == f"{config_mount}/{key}"

    # Secrets: every `file:` reference points into the Secret's mount and names one of its keys.
    secret_mount = mounts["secrets"]
    secret_name = volumes["secrets"]["secret"]["secretName"]
    text = config_map["data"][key]
    referenced = set(re.findall(r'"file:([^"]+)"', text))
    assert referenced and all(p.startswith(secret_mount + "/") for p in referenced), referenced
    secret = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == secret_name]
    if not secret:  # created out of band: the overlay's example lists its keys
        secret = load_yaml_docs(KUBE / "overlays" / overlay / "secret.example.yaml")
        assert secret[0]["metadata"]["name"] == secret_name
    secret_keys = set(secret[0]["stringData"])

    # Load it with realauth's own loader, the mounted files standing in for the Secret.
    files = tmp_path / "secrets"
    files.mkdir()
    for name in secret_keys:
        value = secret[0]["stringData"][name] or ("hex:" + "ab" * 16 if "callback-key" in name else f"x-{name}")
        (files / name).write_text(value + "\n")
    local = tmp_path / key
    local.write_text(text.replace(f"file:{secret_mount}/", f"file:{files}/"))
    settings = load_settings(str(local), log_format=args.log_format)
    return Rendered(docs, deployment, container, settings, secret_keys, secret_mount, referenced)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_loads_and_every_secret_is_mounted(overlay: str, tmp_path: Path) -> None:
    r = render(overlay, tmp_path)
    assert {p.rsplit("/", 1)[1] for p in r.referenced} == r.secret_keys
    assert r.settings.store.startswith("redis://"), "more than one replica needs the shared store"
    assert r.settings.landing_secret is not None, "every replica must sign landings with the same key"
    assert r.settings.tenants, "callers authenticate"
    assert not r.settings.sandbox_admin_enabled, "no credential-less emulator control endpoints on a cluster"
    # Every provider can be built from it (credentials resolve, keys are known to the kind).
    ctx = ProviderContext(clock=Clock(), emulator_url=r.settings.emulator_url)
    for p in r.settings.providers:
        KINDS[p.kind](p, ctx)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ports_and_services_match_the_server(overlay: str, tmp_path: Path) -> None:
    r = render(overlay, tmp_path)
    s = r.settings
    assert s.host not in ("127.0.0.1", "::1", "localhost"), "the kubelet probes the pod IP"
    assert s.effective_http_host not in ("127.0.0.1", "::1", "localhost")
    ports = {p["name"]: p["containerPort"] for p in r.container["ports"]}
    assert s.health_port is not None, "probes have a port of their own (answered from its own threads)"
    assert ports == {"grpc": s.port, "http": s.http_port, "health": s.health_port}

    live, ready, startup = (r.container[k]["grpc"] for k in ("livenessProbe", "readinessProbe", "startupProbe"))
    assert live == {"port": s.health_port, "service": ""}  # the process is up
    assert startup == {"port": s.health_port, "service": ""}
    assert ready == {"port": s.health_port, "service": SERVICE_NAME}  # the store-aware API status
    assert SERVICE_NAME == "realauth.v1.RealAuthService"

    service = find(r.docs, "Service", "realauth")
    assert service["spec"]["selector"] == r.deployment["spec"]["selector"]["matchLabels"]
    assert {p["name"]: (p["port"], ports[p["targetPort"]]) for p in service["spec"]["ports"]} == {
        "grpc": (s.port, s.port),
        "http": (s.http_port, s.http_port),
    }
    annotations = r.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(s.http_port) and annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_outlasts_prestop_drain_and_grace(overlay: str, tmp_path: Path) -> None:
    r = render(overlay, tmp_path)
    command = r.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    pre_stop = float(command[1])
    ready = r.container["readinessProbe"]
    # The endpoints controller must see the pod go away before SIGTERM closes the listeners.
    assert pre_stop >= ready["periodSeconds"]
    needed = pre_stop + server_drain() + r.settings.shutdown_grace + SHUTDOWN_MARGIN
    assert r.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down_and_scaled(overlay: str, tmp_path: Path) -> None:
    r = render(overlay, tmp_path)
    pod = r.deployment["spec"]["template"]["spec"]
    assert r.deployment["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert pod["automountServiceAccountToken"] is False
    sc = r.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(r.container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(r.container["resources"]["limits"])
    assert all(not m.get("subPath") for m in r.container["volumeMounts"]), "subPath mounts never see rotations"

    hpa = find(r.docs, "HorizontalPodAutoscaler", "realauth")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "realauth" and hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["minReplicas"] <= r.deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    pdb = find(r.docs, "PodDisruptionBudget", "realauth")
    assert pdb["spec"]["selector"]["matchLabels"] == r.deployment["spec"]["selector"]["matchLabels"]
    policy = find(r.docs, "NetworkPolicy", "realauth")
    assert policy["spec"]["podSelector"]["matchLabels"] == r.deployment["spec"]["selector"]["matchLabels"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_trial_redis_is_reachable_only_from_realauth(tmp_path: Path) -> None:
    r = render("sandbox", tmp_path)
    redis = find(r.docs, "StatefulSet", "realauth-redis")
    service = find(r.docs, "Service", redis["spec"]["serviceName"])
    host_port = r.settings.store.removeprefix("redis://").split("/")[0]
    assert host_port == f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert service["spec"]["selector"] == redis["spec"]["selector"]["matchLabels"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"  # docs/deployment.md
    policy = find(r.docs, "NetworkPolicy", "realauth-redis")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": r.deployment["spec"]["selector"]["matchLabels"]}}]


# --- the Dockerfile --------------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    stage: int
    name: str
    args: str


def dockerfile() -> list[Instruction]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out: list[Instruction] = []
    stage = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, name.upper(), args.strip()))
    return out


def dockerfile_uid() -> int:
    (user,) = [i.args for i in dockerfile() if i.name == "USER"]
    return int(user.split(":")[0])


def dockerfile_args() -> dict[str, str]:
    return dict(i.args.split("=", 1) for i in dockerfile() if i.name == "ARG" and "=" in i.args)


def shell_commands(script: str) -> list[list[str]]:
    return [shlex.split(c) for c in re.split(r"\s*&&\s*", script) if c.strip()]


def makefile_install() -> list[list[str]]:
    """The `make venv` recipe ($(STAMP)), with the Makefile's variables put back in."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    variables = {"$(PYTHON)": "python", "$(VENV)": "VENV", "$(BIN)": "VENV/bin"}
    cmds = []
    for line in lines:
        for k, v in variables.items():
            line = line.replace(k, v)
        cmds.append(shlex.split(line))
    return cmds


def test_dockerfile_installs_like_the_makefile() -> None:
    build = [i for i in dockerfile() if i.stage == 0 and i.name == "RUN"]
    (run,) = build
    docker = [[a.replace("/opt/venv", "VENV") for a in c] for c in shell_commands(run.args)]
    make = makefile_install()
    # make: create the venv (when missing), upgrade pip, install editable with the dev extras, stamp.
    make_core = [c for c in make if c[:2] != ["test", "-x"] and c[0] != "touch"]
    assert ["python", "-m", "venv", "VENV"] in (make[0][make[0].index("||") + 1 :], *make_core)
    make_pip = [c for c in make if c[1:4] == ["-m", "pip", "install"]]
    docker_pip = [c for c in docker if c[1:4] == ["-m", "pip", "install"]]
    assert docker[0] == ["python", "-m", "venv", "VENV"]
    # The one intended difference: the image installs the project itself, non-editable and without dev tools.
    assert make_pip[-1][-2:] == ["-e", ".[dev]"]
    assert docker_pip == [*make_pip[:-1], [*make_pip[-1][:-2], "."]]
    # Then the installer leaves the venv: nothing in the image can build or fetch packages.
    assert docker[-1][:5] == ["VENV/bin/python", "-m", "pip", "uninstall", "--quiet"] and "pip" in docker[-1]


def test_dockerfile_base_image_is_pinned_and_final_stage_has_no_build_tools() -> None:
    image = dockerfile_args()["PYTHON_IMAGE"]
    m = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-([a-z]+)(@sha256:[0-9a-f]{64})?", image)
    assert m, f"base image must name an exact Python release and Debian release: {image}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floor = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"])
    assert floor and (m.group(1), m.group(2)) == floor.groups(), "the image runs the Python CI tests with"
    froms = [i.args for i in dockerfile() if i.name == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    final = [i for i in dockerfile() if i.stage == 1]
    text = " ".join(i.args for i in final)
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in text
    (uninstall,) = [i for i in final if i.name == "RUN"]
    assert shell_commands(uninstall.args)[0][:6] == ["python", "-m", "pip", "uninstall", "--quiet", "--yes"]
    assert {"pip", "setuptools", "wheel"} <= set(shell_commands(uninstall.args)[0])
    copies = [i.args for i in final if i.name == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]  # the venv only, no sources


def test_dockerfile_labels_user_ports_and_healthcheck() -> None:
    instructions = dockerfile()
    labels = " ".join(i.args for i in instructions if i.name == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert dockerfile_uid() != 0
    (expose,) = [i.args for i in instructions if i.name == "EXPOSE"]
    defaults = Settings()
    assert expose.split() == [str(defaults.port), str(defaults.http_port)]
    (check,) = [i.args for i in instructions if i.name == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3 :])
    assert argv[0] == "realauth"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "health" and args.port == defaults.port and args.service == ""  # liveness
    timeout = re.search(r"--timeout=(\d+)s", check)
    assert timeout and args.timeout < int(timeout.group(1))
    (entry,) = [i.args for i in instructions if i.name == "ENTRYPOINT"]
    assert json.loads(entry) == ["realauth"]
    (cmd,) = [i.args for i in instructions if i.name == "CMD"]
    assert build_parser().parse_args(json.loads(cmd)).command == "serve"


# --- compose.yaml ----------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def container_command(service: dict[str, Any]) -> Any:
    """The service's command as the image runs it: the Dockerfile's ENTRYPOINT (`realauth`) and then the command."""
    (entry,) = [i.args for i in dockerfile() if i.name == "ENTRYPOINT"]
    argv = [*json.loads(entry), *service["command"]]
    assert argv[0] == "realauth"
    return build_parser().parse_args(argv[1:])


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port → host port."""
    out = {}
    for spec in service["ports"]:
        host, container = spec.split(":")
        out[int(container)] = int(host)
    return out


def url_host_port(url: str) -> tuple[str, int]:
    m = re.match(r"^https?://([^/:]+):(\d+)", url)
    assert m, url
    return m.group(1), int(m.group(2))


def test_compose_runs_two_replicas_of_the_image_with_the_config() -> None:
    # `make serve` and the image run the same program: the Makefile's `realauth serve`, the image's ENTRYPOINT.
    assert re.search(r"^serve:.*\n\t\$\(BIN\)/realauth serve \$\(ARGS\)$", (ROOT / "Makefile").read_text(), re.M)
    services = compose()["services"]
    replicas = {name: s for name, s in services.items() if s["command"][0] == "serve"}
    assert len(replicas) >= 2
    (expose,) = [i.args for i in dockerfile() if i.name == "EXPOSE"]
    host_ports: list[int] = []
    for name, service in replicas.items():
        assert service["build"] == "." and service["read_only"] is True, name
        args = container_command(service)
        mounts = dict(reversed(v.rsplit(":", 2)[:2]) for v in service["volumes"])
        settings = load_settings(str(ROOT / mounts[args.config]), log_format=args.log_format)
        assert settings.host == "0.0.0.0"
        ports = published(service)
        assert sorted(ports) == sorted(int(p) for p in expose.split()) == sorted([settings.port, settings.http_port])
        host_ports += ports.values()
        assert "realauth.localhost" in service["networks"]["default"]["aliases"], name
        needed = server_drain() + settings.shutdown_grace + SHUTDOWN_MARGIN
        assert float(service["stop_grace_period"].removesuffix("s")) >= needed, name
        assert {"redis", "seedance", "volcengine", "megvii", "tencent"} <= set(service["depends_on"])
    assert len(host_ports) == len(set(host_ports)), "every replica publishes its own host ports"

    # The browser-facing public URL is a replica's alias, on a host port that reaches a replica's HTTP side.
    host, port = url_host_port(settings.effective_public_url)
    assert host == "realauth.localhost"
    assert any(published(s).get(settings.http_port) == port for s in replicas.values())

    # The store is the compose Redis, the same image the Kubernetes trial uses.
    redis_host, redis_port = settings.store.removeprefix("redis://").split("/")[0].split(":")
    assert redis_host in services and redis_port == "6379"
    k8s_redis = find(kustomize(KUBE / "overlays" / "sandbox"), "StatefulSet", "realauth-redis")
    assert services[redis_host]["image"] == k8s_redis["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "noeviction" in services[redis_host]["command"]


def test_compose_emulators_serve_where_the_config_points() -> None:
    services = compose()["services"]
    replica = next(s for s in services.values() if s["command"][0] == "serve")
    args = container_command(replica)
    mounts = dict(reversed(v.rsplit(":", 2)[:2]) for v in replica["volumes"])
    settings = load_settings(str(ROOT / mounts[args.config]))
    assert sorted(p.kind for p in settings.providers) == sorted(KINDS) and not settings.sandbox
    for provider in settings.providers:
        emulators = [(name, s) for name, s in services.items() if s["command"][:2] == ["emulate", provider.kind]]
        assert len(emulators) == 1, provider.kind
        name, service = emulators[0]
        emu = container_command(service)
        assert emu.host == "0.0.0.0", "reachable from the other containers"
        assert published(service) == {emu.port: emu.port}, "the same port inside the network and on the host"
        alias = f"{name}.localhost"
        assert service["networks"]["default"]["aliases"] == [alias]
        assert emu.public_url == f"http://{alias}:{emu.port}"
        assert str(emu.port) in " ".join(service["healthcheck"]["test"])
        # A kind that pushes results must be allowed to push to realauth's public host (a name, not loopback).
        pushes = hasattr(VENDORS[provider.kind].emulator_class()(public_url=emu.public_url), "pusher")
        assert emu.push_host == ([url_host_port(settings.effective_public_url)[0]] if pushes else []), name
        urls = [provider.base_url] + [v for v in provider.extra.values() if isinstance(v, str) and "://" in v]
        for url in urls:
            assert url_host_port(url) == (alias, emu.port), (provider.name, url)


def test_compose_config_is_the_example_with_other_host_names() -> None:
    """deploy/compose/realauth.toml and examples/emulators.toml differ only in the emulators' host names."""
    example = tomllib.loads((ROOT / "examples" / "emulators.toml").read_text())["providers"]
    composed = tomllib.loads((ROOT / "deploy" / "compose" / "realauth.toml").read_text())["providers"]

    def strip_hosts(tables: dict[str, Any]) -> dict[str, Any]:
        return {
            name: {k: re.sub(r"^http://[^/:]+", "http://HOST", v) if isinstance(v, str) else v for k, v in t.items()}
            for name, t in tables.items()
        }

    assert strip_hosts(example) == strip_hosts(composed)
