"""Issue 5's acceptance: the Kubernetes manifests in ``deploy/k8s``, the ``Dockerfile`` and the
code cannot drift apart unnoticed.

Every overlay is rendered with ``kubectl kustomize`` (offline), every object is validated
against the bundled schemas of :data:`KUBERNETES_VERSION` (kubernetes-validate, strict: an
unknown field is an error), and the hardening the issue asks for is checked on the rendered
objects. The environment the manifests give the pods is checked against
:class:`sessiond.settings.Settings`, and finally replicas are started on this machine with the
rendered ``prod`` ConfigMap's environment (see :data:`REPLACED`) and must become ready, serve
and propagate a revocation.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import nats
import nats.errors
import pytest
import yaml  # type: ignore[import-untyped]
from click.testing import CliRunner
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError

from sessiond.cli import main as cli
from sessiond.cluster import LocalCluster
from sessiond.cluster.local import OWNED_SETTINGS, REDIS_USER
from sessiond.cluster.nats_auth import ROLE_USERS, password_variable
from sessiond.cluster.processes import ProcessSpec, tcp_probe
from sessiond.cluster.tls import make_test_pki
from sessiond.redis_client import PROBE_RULE, acl_user
from sessiond.settings import Settings, env_name
from support.secrets import register
from support.servers import NATS, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
#: The Kubernetes version whose schemas the objects must satisfy (kubernetes-validate bundles
#: them, so validation needs no network and no cluster).
KUBERNETES_VERSION = "1.32.0"
WORKLOADS = ("Deployment", "StatefulSet")
#: The only pods that may reach Redis and NATS.
CLIENTS = {"sessiond", "sessiond-relay", "sessiond-delivery"}
#: The workers beside the service: they serve nothing to probe, and read the same settings.
WORKERS = ("sessiond-relay", "sessiond-delivery")
#: Settings that distributed mode cannot run without; the ConfigMap must set every one.
REQUIRED = {
    env_name(name) for name in ("redis_url", "nats_url", "keyset_file", "credentials_file", "host")
}
NATS_SERVER = Path(sys.executable).with_name("nats-server")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a pod must listen on
TMP = "/tmp"  # noqa: S108 - the emptyDir mount point in the pods

Obj = dict[str, Any]


# --- rendering ------------------------------------------------------------------------------


@cache
def render(overlay: str) -> tuple[Obj, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/k8s (./dev test installs it)")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def objects(overlay: str, kind: str) -> list[Obj]:
    return [obj for obj in render(overlay) if obj["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> Obj:
    found = [obj for obj in objects(overlay, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: {len(found)} {kind} named {name}"
    return found[0]


def configmap(overlay: str, prefix: str) -> Obj:
    """The generated ConfigMap ``prefix-<hash>``."""
    found = [
        cm
        for cm in objects(overlay, "ConfigMap")
        if re.fullmatch(rf"{prefix}(-[a-z0-9]+)?", cm["metadata"]["name"])
    ]
    assert len(found) == 1, f"{overlay}: ConfigMap {prefix}: {found}"
    return found[0]


def sessiond_env(overlay: str) -> dict[str, str]:
    data: dict[str, str] = configmap(overlay, "sessiond-config")["data"]
    return data


def pod(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Obj, name: str | None = None) -> Obj:
    containers: list[Obj] = pod(workload)["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(overlay: str) -> dict[str, dict[str, str]]:
    """The pod-template labels of every workload, by workload name."""
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for kind in WORKLOADS
        for w in objects(overlay, kind)
    }


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_the_pinned_kubernetes_version(overlay: str) -> None:
    rendered = render(overlay)
    assert len(rendered) >= 10
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {obj['kind']} {obj['metadata']['name']}: {exc}")


def test_the_schema_validation_is_strict_and_offline() -> None:
    """The check above would catch a misspelt field (strict schemas, bundled in the package)."""
    bad = yaml.safe_load(yaml.safe_dump(one("prod", "Deployment", "sessiond")))
    container(bad)["readinesProbe"] = container(bad).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


# --- hardening ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_hardened(overlay: str) -> None:
    workloads = [w for kind in WORKLOADS for w in objects(overlay, kind)]
    names = {w["metadata"]["name"] for w in workloads}
    assert names == {*CLIENTS, "nats", "redis"}
    for workload in workloads:
        name, spec = workload["metadata"]["name"], pod(workload)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["securityContext"].get("runAsUser", 0) != 0, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged", False) is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            if name not in WORKERS:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in c, f"{name}: no {probe}"
        # Kubernetes would otherwise inject SESSIOND_PORT=tcp://... and SESSIOND_SERVICE_HOST
        # for the Service named sessiond: not settings, and Settings.load refuses them.
        assert spec["enableServiceLinks"] is False, name
    for account in objects(overlay, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sessiond_probes_gate_on_the_denylist_and_shutdown_drains(overlay: str) -> None:
    deployment = one(overlay, "Deployment", "sessiond")
    c, env = container(deployment, "sessiond"), sessiond_env(overlay)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(env["SESSIOND_PORT"])
    assert env["SESSIOND_HOST"] == ALL_INTERFACES  # the code's default (127.0.0.1) is unreachable
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", ports["http"])
    # stale for longer than a readiness period means out of the Service quickly
    assert c["readinessProbe"]["periodSeconds"] * c["readinessProbe"]["failureThreshold"] <= 5
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30  # replaying the stream
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = pod(deployment)["terminationGracePeriodSeconds"]
    assert grace >= int(pre_stop[1]) + 15, "no time left to drain in-flight requests"
    assert c.get("args") == ["serve"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keyset_and_credentials_come_from_secrets_mounted_as_directories(overlay: str) -> None:
    env = sessiond_env(overlay)
    for name in CLIENTS:
        workload = one(overlay, "Deployment", name)
        c = container(workload)
        assert any(
            ref.get("configMapRef", {}).get("name")
            == configmap(overlay, "sessiond-config")["metadata"]["name"]
            for ref in c["envFrom"]
        ), name
        volumes = {v["name"]: v for v in pod(workload)["volumes"]}
        mounts = c["volumeMounts"]
        assert all("subPath" not in m and "subPathExpr" not in m for m in mounts), (
            f"{name}: a subPath mount never sees a Secret update"
        )
        for setting, secret in (
            ("SESSIOND_KEYSET_FILE", "sessiond-keyset"),
            ("SESSIOND_CREDENTIALS_FILE", "sessiond-credentials"),
        ):
            path = Path(env[setting])
            mount = next(m for m in mounts if m["mountPath"] == str(path.parent))
            assert mount["readOnly"] is True
            volume = volumes[mount["name"]]
            assert volume["secret"]["secretName"] == secret, f"{name}: {setting}"
            assert "items" not in volume["secret"]  # the file name is the Secret's key
        if TMP in {m["mountPath"] for m in mounts}:
            tmp = next(m for m in mounts if m["mountPath"] == TMP)
            assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_relay_is_its_own_deployment(overlay: str) -> None:
    relay = one(overlay, "Deployment", "sessiond-relay")
    assert container(relay)["command"] == ["sessiond-relay"]
    assert container(relay)["image"] == container(one(overlay, "Deployment", "sessiond"))["image"]
    assert "ports" not in container(relay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_delivery_worker_runs_and_is_replaced_only_once_stopped(overlay: str) -> None:
    """Two workers at once would share each receiver's consumer and could reorder its events
    (docs/receivers.md): one replica, and an update stops it before starting the new one."""
    delivery = one(overlay, "Deployment", "sessiond-delivery")
    assert delivery["spec"]["replicas"] == 1
    assert delivery["spec"]["strategy"] == {"type": "Recreate"}
    c = container(delivery)
    assert c["command"][0] == "sessiond-delivery"
    assert c["image"] == container(one(overlay, "Deployment", "sessiond"))["image"]
    metrics = c["command"][c["command"].index("--metrics-port") + 1]
    assert c["ports"] == [{"name": "metrics", "containerPort": int(metrics), "protocol": "TCP"}]
    assert c["command"][c["command"].index("--metrics-host") + 1] == ALL_INTERFACES


def test_prod_is_highly_available() -> None:
    deployment = one("prod", "Deployment", "sessiond")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 3
    spread = {t["topologyKey"]: t for t in pod(deployment).get("topologySpreadConstraints", [])}
    assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= set(spread)
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1
        assert selects(constraint["labelSelector"], labels)

    (hpa,) = objects("prod", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sessiond",
    }
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]

    budgets = objects("prod", "PodDisruptionBudget")
    sessiond_pdb = [b for b in budgets if selects(b["spec"]["selector"], labels)]
    assert len(sessiond_pdb) == 1
    assert sessiond_pdb[0]["spec"].get("minAvailable", 0) >= 2 or (
        sessiond_pdb[0]["spec"].get("maxUnavailable") == 1
    )
    nats_labels = one("prod", "StatefulSet", "nats")["spec"]["template"]["metadata"]["labels"]
    assert any(
        b["spec"].get("maxUnavailable") == 1
        for b in budgets
        if selects(b["spec"]["selector"], nats_labels)
    ), "a NATS PDB keeps the JetStream quorum"
    assert int(sessiond_env("prod")["SESSIOND_NATS_REPLICAS"]) == 3


def test_dev_runs_one_of_each() -> None:
    for kind in WORKLOADS:
        for workload in objects("dev", kind):
            assert workload["spec"]["replicas"] == 1, workload["metadata"]["name"]
    assert sessiond_env("dev")["SESSIOND_NATS_REPLICAS"] == "1"
    assert not re.search(r"^\s*cluster\s*\{", nats_conf("dev"), re.M)
    assert not objects("dev", "HorizontalPodAutoscaler")


# --- NATS and Redis -------------------------------------------------------------------------


def nats_conf(overlay: str, name: str = "nats.conf") -> str:
    conf: str = configmap(overlay, "nats-config")["data"][name]
    return conf


def secret_dir(directory: Path) -> Path:
    """A TLS Secret's files as the pods see them (ca.crt, tls.crt, tls.key), from a test CA."""
    pki = make_test_pki(directory / "pki")
    for key, source in (
        ("ca.crt", pki.ca_file),
        ("tls.crt", pki.cert_file),
        ("tls.key", pki.key_file),
    ):
        (directory / key).write_bytes(source.read_bytes())
    return directory


def write_nats_config(overlay: str, directory: Path, tls: Path) -> Path:
    """The rendered nats-config files in ``directory``, the TLS Secret's mount point replaced
    by ``tls``; returns the path of nats.conf."""
    mount = mount_path(one(overlay, "StatefulSet", "nats"), "sessiond-nats-tls")
    directory.mkdir(parents=True, exist_ok=True)
    for name in configmap(overlay, "nats-config")["data"]:
        (directory / name).write_text(nats_conf(overlay, name).replace(mount, str(tls)))
    return directory / "nats.conf"


def nats_passwords() -> dict[str, str]:
    """nats-server's environment: a password for each user of the authorization block."""
    passwords = {password_variable(user): f"p{user}-test-password" for user, _ in ROLE_USERS}
    for password in passwords.values():
        register("NATS password", password)
    return passwords


def mount_path(workload: Obj, secret: str) -> str:
    """Where ``workload``'s container mounts the Secret ``secret``."""
    volume = next(
        v["name"]
        for v in pod(workload)["volumes"]
        if v.get("secret", {}).get("secretName") == secret
    )
    path: str = next(
        m["mountPath"] for m in container(workload)["volumeMounts"] if m["name"] == volume
    )
    return path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_runs_jetstream_on_file_storage_with_fsync_always(
    overlay: str, tmp_path: Path
) -> None:
    conf = nats_conf(overlay)
    jetstream = re.search(r"jetstream\s*\{([^}]*)\}", conf)
    assert jetstream is not None
    assert re.search(r"^\s*sync_interval:\s*always\s*$", jetstream.group(1), re.M)
    assert re.search(r"^\s*store_dir:\s*/data\b", jetstream.group(1), re.M)
    nats = one(overlay, "StatefulSet", "nats")
    mounts = {m["mountPath"]: m["name"] for m in container(nats)["volumeMounts"]}
    assert mounts["/data"] in {t["metadata"]["name"] for t in nats["spec"]["volumeClaimTemplates"]}
    # nats-server itself accepts the rendered files (the same binary the e2e tests run)
    conf_file = write_nats_config(overlay, tmp_path, secret_dir(tmp_path / "tls"))
    checked = subprocess.run(
        [str(NATS_SERVER), "-c", str(conf_file), "-t"],
        cwd=tmp_path,
        env={"SERVER_NAME": "nats-0", **nats_passwords()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prod_nats_is_a_cluster_of_three_with_routes_over_the_headless_service() -> None:
    nats = one("prod", "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    headless = one("prod", "Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(
        {"matchLabels": headless["spec"]["selector"]},
        nats["spec"]["template"]["metadata"]["labels"],
    )
    routes = set(re.findall(r"nats://([\w.-]+):6222", nats_conf("prod")))
    service = headless["metadata"]["name"]
    assert routes == {f"nats-{n}.{service}" for n in range(3)}
    client = one("prod", "Service", "nats")
    assert [p["port"] for p in client["spec"]["ports"]] == [4222]
    assert sessiond_env("prod")["SESSIOND_NATS_URL"] == "tls://nats:4222"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_persists_with_aof(overlay: str) -> None:
    conf = configmap(overlay, "redis-config")["data"]["redis.conf"]
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and line[0] != "#"
    )
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] in ("always", "everysec")
    assert settings["dir"] == "/data"
    redis = one(overlay, "StatefulSet", "redis")
    mounts = {m["mountPath"]: m["name"] for m in container(redis)["volumeMounts"]}
    assert mounts["/data"] in {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    assert sessiond_env(overlay)["SESSIOND_REDIS_URL"].startswith("rediss://redis:6379/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_sessiond_and_the_relay_reach_redis_and_nats(overlay: str) -> None:
    labels = pod_labels(overlay)
    policies = objects(overlay, "NetworkPolicy")
    for server, port in (("redis", 6379), ("nats", 4222)):
        guarding = [p for p in policies if selects(p["spec"]["podSelector"], labels[server])]
        assert guarding, f"no NetworkPolicy selects {server}"
        allowed_on: dict[int, set[str]] = {}
        for policy in guarding:
            assert "Ingress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{server}: a rule that admits everyone"
                assert rule.get("ports"), f"{server}: a rule for every port"
                for peer in rule["from"]:
                    assert set(peer) == {"podSelector"}, f"{server}: {peer} (not a pod peer)"
                admitted = {
                    name
                    for name, pod_label in labels.items()
                    if any(selects(peer["podSelector"], pod_label) for peer in rule["from"])
                }
                for p in rule["ports"]:
                    allowed_on.setdefault(p["port"], set()).update(admitted)
        assert allowed_on.pop(port) == CLIENTS, f"{server}:{port}"
        if server == "nats":
            assert allowed_on.pop(6222) == {"nats"}  # routes between the NATS servers
        assert not allowed_on, f"{server}: more ports open: {allowed_on}"


# --- credentials and TLS -------------------------------------------------------------------

#: The NATS user each client workload signs in as (nats_auth.ROLE_USERS).
NATS_USER_OF = {"sessiond": "authority", "sessiond-relay": "relay", "sessiond-delivery": "delivery"}
#: The Secret holding the NATS users' passwords, one key per user.
NATS_USERS_SECRET = "sessiond-nats-users"


def test_the_nats_authorization_block_is_the_one_the_code_generates() -> None:
    """The permission lists live in sessiond.cluster.nats_auth only: the checked-in block is
    the output of the command deploy/k8s/README.md gives (regenerate it with that command)."""
    env = sessiond_env("prod")
    stream = {key: value for key, value in env.items() if key.startswith("SESSIOND_NATS_S")}
    result = CliRunner().invoke(cli, ["deploy", "nats-authorization"], env=stream)
    assert result.exit_code == 0, result.output
    checked_in = (K8S / "base" / "nats-authorization.conf").read_text()
    assert checked_in == result.output, "run: sessiond deploy nats-authorization"
    for overlay in OVERLAYS:
        assert nats_conf(overlay, "nats-authorization.conf") == checked_in
        assert re.search(r"^include nats-authorization\.conf$", nats_conf(overlay), re.M)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_lets_in_only_its_users_over_tls_with_passwords_from_a_secret(overlay: str) -> None:
    conf, block = nats_conf(overlay), nats_conf(overlay, "nats-authorization.conf")
    assert "no_auth_user" not in conf + block  # no anonymous access
    users = re.findall(r"^\s*user: (\S+)$", block, re.M)
    assert users == [user for user, _ in ROLE_USERS]
    passwords = re.findall(r"^\s*password: \$(\S+)$", block, re.M)
    assert passwords == [password_variable(user) for user in users]
    nats_env = {e["name"]: e for e in container(one(overlay, "StatefulSet", "nats"))["env"]}
    for user, variable in zip(users, passwords, strict=True):
        ref = nats_env[variable]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": NATS_USERS_SECRET, "key": user}
    tls = re.search(r"^tls\s*\{([^}]*)\}", conf, re.M)
    assert tls is not None, "clients connect without TLS"
    mount = mount_path(one(overlay, "StatefulSet", "nats"), "sessiond-nats-tls")
    for key in ("cert_file", "key_file", "ca_file"):
        assert re.search(rf"^\s*{key}: {mount}/\S+$", tls.group(1), re.M), key
    if overlay == "prod":  # routes: mutual TLS
        cluster = re.search(r"^cluster\s*\{(.*)^\}", conf, re.M | re.S)
        assert cluster is not None
        route_tls = re.search(r"tls\s*\{([^}]*)\}", cluster.group(1))
        assert route_tls is not None, "routes without TLS"
        assert re.search(r"^\s*verify: true$", route_tls.group(1), re.M)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sessiond_and_the_relay_read_their_passwords_from_secrets(overlay: str) -> None:
    env = sessiond_env(overlay)
    assert not [key for key in env if "PASSWORD" in key or "TOKEN" in key]  # not a ConfigMap
    assert env["SESSIOND_NATS_URL"].startswith("tls://")
    assert env["SESSIOND_REDIS_URL"].startswith("rediss://")
    for name, user in NATS_USER_OF.items():
        workload = one(overlay, "Deployment", name)
        explicit = {e["name"]: e for e in container(workload)["env"]}
        assert explicit["SESSIOND_NATS_USER"]["value"] == user
        assert explicit["SESSIOND_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": NATS_USERS_SECRET,
            "key": user,
        }
        assert explicit["SESSIOND_REDIS_USERNAME"]["value"] == REDIS_USER
        assert explicit["SESSIOND_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "sessiond-redis-users",
            "key": "password",
        }
        for server in ("nats", "redis"):
            ca = Path(env[f"SESSIOND_{server.upper()}_TLS_CA"])
            assert mount_path(workload, f"sessiond-{server}-tls") == str(ca.parent), name
            volume = next(
                v
                for v in pod(workload)["volumes"]
                if v.get("secret", {}).get("secretName") == f"sessiond-{server}-tls"
            )
            # the CA only: a client never holds the server's key
            assert volume["secret"]["items"] == [{"key": "ca.crt", "path": ca.name}]


def referenced_secrets(overlay: str) -> set[str]:
    names: set[str] = set()
    for kind in WORKLOADS:
        for workload in objects(overlay, kind):
            for volume in pod(workload).get("volumes", []):
                if "secret" in volume:
                    names.add(volume["secret"]["secretName"])
            for c in pod(workload)["containers"]:
                for e in c.get("env", []):
                    if "secretKeyRef" in e.get("valueFrom", {}):
                        names.add(e["valueFrom"]["secretKeyRef"]["name"])
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_the_manifests_use_is_in_the_readme_create_these_first(overlay: str) -> None:
    readme = (K8S / "README.md").read_text()
    section = re.search(r"^## Create these first\n(.*?)^## ", readme, re.M | re.S)
    assert section is not None, "deploy/k8s/README.md has no 'Create these first' section"
    referenced = referenced_secrets(overlay)
    assert {"sessiond-nats-users", "sessiond-redis-users", "sessiond-nats-tls"} <= referenced
    for name in referenced:
        assert f"create secret generic {name}" in section.group(1) or (
            f"create secret tls {name}" in section.group(1)
        ), f"{name}: not created in README's 'Create these first'"
    assert not objects(overlay, "Secret"), "a Secret in the tree: keys never live in git"


def test_the_rendered_redis_config_serves_tls_with_the_acl_users_of_the_command(
    tmp_path: Path,
) -> None:
    """Redis runs the rendered redis.conf with the users.acl that `sessiond deploy
    redis-users` writes: sessiond's user is acl_user's, the default user may only PING."""
    users = tmp_path / "users"
    result = CliRunner().invoke(cli, ["deploy", "redis-users", str(users)])
    assert result.exit_code == 0, result.output
    password = (users / "password").read_text()
    register("Redis password", password)
    lines = (users / "users.acl").read_text().splitlines()
    assert lines == [
        f"user default {PROBE_RULE}",
        f"user {' '.join(acl_user(REDIS_USER, password))}",
    ]

    redis = one("prod", "StatefulSet", "redis")
    conf = configmap("prod", "redis-config")["data"]["redis.conf"]
    tls = secret_dir(tmp_path / "tls")
    conf = conf.replace(mount_path(redis, "sessiond-redis-tls"), str(tls))
    conf = conf.replace(mount_path(redis, "sessiond-redis-users"), str(users))
    conf = re.sub(r"^dir .*$", "dir {dir}", conf, flags=re.M)
    spec = ProcessSpec(
        name="redis-server",
        binary="redis-server",
        # loopback, a free port and a private directory instead of the pod's
        args=("{config}", "--tls-port", "{port}", "--bind", "127.0.0.1"),
        scheme="rediss",
        url_suffix="/0",
        config=conf,
        probe=tcp_probe(b"PING\r\n", b"+PONG", ssl.create_default_context(cafile=tls / "ca.crt")),
    )
    with ServerProcess(spec, directory=tmp_path / "redis") as server:
        port = server.port
        client = Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=str(tls / "ca.crt"),
            username=REDIS_USER,
            password=password,
        )
        anonymous = Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(tls / "ca.crt"))
        plain = Redis(host="127.0.0.1", port=port, socket_timeout=2)
        with client, anonymous, plain:
            assert client.set("sessiond:k8s", b"1") is True
            with pytest.raises(NoPermissionError):
                client.set("other:k8s", b"1")
            with pytest.raises(NoPermissionError):
                client.flushall()
            assert anonymous.ping() is True  # the probes
            with pytest.raises(NoPermissionError):
                anonymous.get("sessiond:k8s")
            with pytest.raises(AuthenticationError):
                Redis(
                    host="127.0.0.1",
                    port=port,
                    ssl=True,
                    ssl_ca_certs=str(tls / "ca.crt"),
                    username=REDIS_USER,
                    password="wrong",
                ).ping()
            with pytest.raises(RedisConnectionError):
                plain.ping()


def test_the_rendered_nats_config_refuses_anonymous_clients_and_admits_its_users(
    tmp_path: Path,
) -> None:
    tls = secret_dir(tmp_path / "tls")
    # next to nats-server's own copy of nats.conf, for the include
    config = write_nats_config("dev", tmp_path / "nats", tls).read_text()
    config = re.sub(r"^(port|http_port|pid_file):.*$", "", config, flags=re.M)
    config = re.sub(r"store_dir: \S+", 'store_dir: "{dir}"', config)
    passwords = nats_passwords()
    # the test suite's nats-server (loopback, a free port) with the rendered configuration
    spec = replace(NATS, scheme="tls", config=config, env={"SERVER_NAME": "nats-0", **passwords})
    context = ssl.create_default_context(cafile=tls / "ca.crt")

    async def check(url: str) -> None:
        with pytest.raises(nats.errors.Error, match="Authorization"):
            await nats.connect(url, tls=context, allow_reconnect=False, max_reconnect_attempts=0)
        for user, _ in ROLE_USERS:
            client = await nats.connect(
                url,
                tls=context,
                user=user,
                password=passwords[password_variable(user)],
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
            await client.close()

    with ServerProcess(spec, directory=tmp_path / "nats") as server:
        asyncio.run(check(server.url))


# --- the environment against the code --------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_the_manifests_set_is_a_setting_and_every_required_one_is_set(
    overlay: str,
) -> None:
    env = sessiond_env(overlay)
    known = {env_name(field) for field in Settings.__struct_fields__}
    explicit = {
        e["name"]
        for name in CLIENTS
        for e in container(one(overlay, "Deployment", name)).get("env", [])
    }
    for key in [*env, *explicit]:
        assert key.startswith("SESSIOND_"), f"{key}: not a sessiond setting"
        assert key in known, f"{key}: no such setting in sessiond.settings.Settings"
    assert set(env) >= REQUIRED, f"missing: {sorted(REQUIRED - set(env))}"
    settings = Settings.load(env)
    assert not settings.embedded
    assert settings.host == ALL_INTERFACES


# --- the image ------------------------------------------------------------------------------


def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """(FROM line, [(instruction, arguments)]) of every stage; continuations joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append((args.strip(), []))
        elif stages:
            stages[-1][1].append((instruction.upper(), args.strip()))
    return stages


BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|build-essential|cargo|rustc|python3?-dev|libc6?-dev)\b"
)


def test_the_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder_names = {f.split(" AS ")[-1].strip() for f, _ in stages[:-1] if " AS " in f.upper()}
    final_from, final = stages[-1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    image = re.search(r"ARG PYTHON_IMAGE=(\S+)", dockerfile)
    base = final_from.split()[0]
    if image is not None:
        base = base.replace("${PYTHON_IMAGE}", image.group(1))
    assert "slim" in base or "distroless" in base, base
    assert any("wheel" in args for _, args in stages[0][1] if _ == "RUN")  # a wheel is built
    assert any(f"from={name}" in args for _, args in final for name in builder_names), (
        "the final stage takes the wheels from the builder"
    )
    users = [args for instr, args in final if instr == "USER"]
    assert users, "the final stage runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric (runAsNonRoot checks it)"
    assert int(uid) != 0
    runs = " ".join(args for instr, args in final if instr == "RUN")
    assert not BUILD_TOOLS.search(runs), BUILD_TOOLS.search(runs)
    assert "apt-get install" not in runs
    assert "--no-index" in runs, "the final stage installs only the builder's wheels"
    exposed = {args for instr, args in final if instr == "EXPOSE"}
    assert exposed == {sessiond_env("prod")["SESSIOND_PORT"]}
    known = {env_name(field) for field in Settings.__struct_fields__}
    for instr, args in final:
        if instr == "ENV":
            for key in re.findall(r"(SESSIOND_\w+)=", args):
                assert key in known, f"Dockerfile ENV {key}: no such setting"
    entry = [args for instr, args in final if instr in ("ENTRYPOINT", "CMD")]
    assert entry == ['["sessiond"]', '["serve"]']
    # the pods run the same uid the image declares
    for name in CLIENTS:
        context = pod(one("prod", "Deployment", name))["securityContext"]
        assert str(context["runAsUser"]) == uid


def test_the_build_context_has_what_the_build_needs_and_no_secrets() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests"} <= ignored
    assert any("keyset" in pattern for pattern in ignored)
    assert any("credentials" in pattern for pattern in ignored)
    copied = {
        part
        for instr, args in dockerfile_stages()[0][1]
        if instr == "COPY"
        for part in args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "src"}
    assert not copied & ignored
    for path in copied:
        assert (ROOT / path).exists()


# --- the drift test: the prod ConfigMap runs -------------------------------------------------

#: The keys of the rendered prod ConfigMap that cannot work on one machine, and what replaces
#: them. Everything else in the ConfigMap reaches the replicas (and the relay) unchanged.
REPLACED = {
    "SESSIOND_HOST": "127.0.0.1 (LocalCluster)",
    "SESSIOND_PORT": "a free port per replica (LocalCluster)",
    "SESSIOND_REDIS_URL": "the local redis-server (LocalCluster)",
    "SESSIOND_NATS_URL": "the local nats-server (LocalCluster)",
    "SESSIOND_KEYSET_FILE": "a test keyset file (LocalCluster)",
    "SESSIOND_CREDENTIALS_FILE": "a test credentials file (LocalCluster)",
    "SESSIOND_REDIS_TLS_CA": "the test CA (LocalCluster(tls=True))",
    "SESSIOND_NATS_TLS_CA": "the test CA (LocalCluster(tls=True))",
    "SESSIOND_NATS_REPLICAS": "1: there is one local NATS server",
}
LOCAL = {"SESSIOND_NATS_REPLICAS": "1"}


@pytest.fixture(scope="module")
def prod_like() -> Iterator[LocalCluster]:
    env = sessiond_env("prod")
    assert set(REPLACED) <= set(env), "REPLACED lists a key the ConfigMap does not set"
    # LocalCluster sets these itself (and refuses them in env)
    assert set(REPLACED) - set(LOCAL) <= OWNED_SETTINGS
    kept = {key: value for key, value in env.items() if key not in REPLACED}
    # TLS and ACL users on both servers, as in the manifests; returns once every /readyz is 200
    with LocalCluster(2, env={**kept, **LOCAL}, tls=True) as cluster:
        for replica in [*cluster.replicas, *([cluster.relay] if cluster.relay else [])]:
            for key, value in kept.items():
                assert replica.env[key] == value
        yield cluster


def test_replicas_with_the_prod_configmap_become_ready_serve_and_propagate_revocations(
    prod_like: LocalCluster,
) -> None:
    service = {"Authorization": f"Bearer {prod_like.credential}"}
    one_, two = (httpx.Client(base_url=url, timeout=10.0) for url in prod_like.urls)
    with one_, two:
        for http in (one_, two):
            assert http.get("/readyz").status_code == 200
            assert http.get("/healthz").status_code == 200
        created = one_.post("/v1/sessions", json={"subject": "k8s-drift"}, headers=service)
        assert created.status_code == 201, created.text
        body = created.json()
        user = {"Authorization": f"Bearer {body['access_token']}"}
        for http in (one_, two):
            assert http.get("/v1/whoami", headers=user).status_code == 200

        revoked = one_.delete(f"/v1/sessions/{body['session_id']}", headers=service)
        assert revoked.status_code == 204, revoked.text  # acknowledged by the stream
        deadline = time.monotonic() + 5.0
        answer = two.get("/v1/whoami", headers=user)
        while answer.status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.01)
            answer = two.get("/v1/whoami", headers=user)
        assert answer.status_code == 401, answer.text
        assert one_.get("/v1/whoami", headers=user).status_code == 401
        metrics = two.get("/metrics")
        assert metrics.status_code == 200
        assert "sessiond_denylist_staleness_seconds" in metrics.text
    assert prod_like.relay is not None
    prod_like.relay.check_alive()
