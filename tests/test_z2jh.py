"""Zero to JupyterHub values, checked without a cluster: merged over the chart's defaults, validated
against the chart's own JSON schema (pinned in ``tests/data/z2jh/`` with its BSD licence)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "tests" / "data" / "z2jh"

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")


def merge(base: Any, ours: Any) -> Any:
    """Helm's deep merge: mappings merge key by key, ours wins everywhere else."""
    if isinstance(base, dict) and isinstance(ours, dict):
        merged = copy.deepcopy(base)
        for key, value in ours.items():
            merged[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(ours)


def merged_values(ours: dict) -> dict:
    """Our values over the chart's defaults, as `helm install -f` computes them."""
    return merge(yaml.safe_load((CHART / "values.yaml").read_text()), ours)


def validate(values: dict) -> None:
    """Raise jsonschema.ValidationError if the chart would refuse ``values``."""
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    jsonschema.validate(values, schema)


def test_our_values_pass_the_charts_schema():
    """voila_config/z2jh-values.yaml merged over the chart defaults is valid for the chart."""
    ours = yaml.safe_load((REPO / "voila_config" / "z2jh-values.yaml").read_text())
    validate(merged_values(ours))


def test_the_schema_check_catches_a_typo():
    """A misspelt key (extraVolumeMount) is refused: the check above can fail."""
    ours = yaml.safe_load((REPO / "voila_config" / "z2jh-values.yaml").read_text())
    ours["singleuser"]["storage"]["extraVolumeMount"] = ours["singleuser"]["storage"].pop("extraVolumeMounts")
    with pytest.raises(jsonschema.ValidationError):
        validate(merged_values(ours))


def test_reviewer_pods_mount_images_read_only_and_only_their_own_decisions():
    """Images read-only, decisions by subPath per reviewer, culling by max age, network policy on."""
    values = merged_values(yaml.safe_load((REPO / "voila_config" / "z2jh-values.yaml").read_text()))
    mounts = values["singleuser"]["storage"]["extraVolumeMounts"]
    writable = [m for m in mounts if not m.get("readOnly")]
    assert [m["subPath"] for m in writable] == ["users/{username}"]
    assert all(m.get("readOnly") for m in mounts if m not in writable)
    assert values["cull"]["enabled"] and values["cull"]["maxAge"] > 0
    assert values["singleuser"]["networkPolicy"]["enabled"] is True


# --- the reviewer pod as KubeSpawner builds it, offline ------------------------------------------


def spawner_config(values: dict) -> Any:
    """The KubeSpawner settings the chart's hub config derives from ``singleuser`` of ``values``.

    A transcription of the part of the chart's ``files/hub/jupyterhub_config.py`` that shapes the
    reviewer's pod (``set_config_if_not_none`` for each trait, the image name:tag, the storage type
    ``none`` plus the extra volumes, the cloud-metadata init container); helm itself cannot run here.
    """
    from traitlets.config import Config

    single = values["singleuser"]
    config = Config()
    spawner = config.KubeSpawner
    for trait, key in (
        ("cmd", "cmd"),
        ("uid", "uid"),
        ("fs_gid", "fsGid"),
        ("allow_privilege_escalation", "allowPrivilegeEscalation"),
        ("environment", "extraEnv"),
        ("extra_labels", "extraLabels"),
        ("mem_limit", "memory.limit"),
        ("mem_guarantee", "memory.guarantee"),
        ("cpu_limit", "cpu.limit"),
        ("cpu_guarantee", "cpu.guarantee"),
        ("node_selector", "nodeSelector"),
        ("extra_pod_config", "extraPodConfig"),
        ("lifecycle_hooks", "lifecycleHooks"),
    ):
        value: Any = single
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            spawner[trait] = value
    spawner.image = f"{single['image']['name']}:{single['image']['tag']}"
    assert single["storage"]["type"] == "none"  # no home volume: only the extra volumes below
    spawner.volumes = list(single["storage"]["extraVolumes"])
    spawner.volume_mounts = list(single["storage"]["extraVolumeMounts"])
    init = list(single.get("initContainers") or [])
    if single["cloudMetadata"]["blockWithIptables"]:
        tools = single["networkTools"]["image"]
        init.append(
            {
                "name": "block-cloud-metadata",
                "image": f"{tools['name']}:{tools['tag']}",
                "command": ["iptables", "-A", "OUTPUT", "-d", single["cloudMetadata"]["ip"], "-j", "DROP"],
                "securityContext": {
                    "privileged": True,
                    "runAsUser": 0,
                    "capabilities": {"add": ["NET_ADMIN"]},
                },
            }
        )
    spawner.init_containers = init
    return config


def pod_manifest(values: dict, user: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The pod KubeSpawner (``_mock=True``) would create for ``user``, as the JSON the API receives."""
    import asyncio
    from unittest.mock import Mock

    pytest.importorskip("kubespawner")
    import kubespawner.spawner
    from kubernetes_asyncio.client import ApiClient
    from kubespawner import KubeSpawner

    # KubeSpawner loads a cluster's configuration when created; there is none here, and building
    # the manifest contacts nothing, so that step is skipped.
    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **_: None)
    reviewer = Mock()
    reviewer.name, reviewer.escaped_name, reviewer.id, reviewer.url = user, user, 7, f"/user/{user}/"

    async def build() -> dict:
        spawner = KubeSpawner(config=spawner_config(values), user=reviewer, _mock=True)
        spawner.api_token = "not-a-real-token"
        manifest = await spawner.get_pod_manifest()  # async since kubespawner 1.0
        async with ApiClient() as api:
            return api.sanitize_for_serialization(manifest)

    return asyncio.run(build())


def k8s_validate(manifest: dict) -> None:
    """Validate ``manifest`` strictly against the newest Kubernetes schema kubernetes-validate ships."""
    kv = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import latest_version

    kv.validate(manifest, latest_version(), strict=True)


@pytest.fixture
def values() -> dict:
    """Our values merged over the chart's defaults."""
    return merged_values(yaml.safe_load((REPO / "voila_config" / "z2jh-values.yaml").read_text()))


def test_kubespawner_builds_the_reviewer_pod_we_mean(values, monkeypatch):
    """The real pod: standalone proxy + Voilà, images read-only, own decisions, reviewer, non-root."""
    pod = pod_manifest(values, "alice", monkeypatch)
    (container,) = pod["spec"]["containers"]
    command = container.get("command", []) + container.get("args", [])
    assert command == values["singleuser"]["cmd"]  # flag for flag `cmrqc hub`'s: tests/test_serve.py
    voila = command[command.index("--") + 1 :]
    assert command[0].endswith("/jupyter-standaloneproxy") and voila[1:3] == ["-m", "cmrqc_widgets.serve.app"]
    assert "--VoilaConfiguration.strip_sources=True" in voila
    assert "--CachedVoila.unix_socket={unix_socket}" in voila
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/srv/cmrqc/users/alice"]["subPath"] == "users/alice"
    assert not mounts["/srv/cmrqc/users/alice"].get("readOnly")
    assert mounts["/srv/cmrqc/cohorts"]["readOnly"] is True
    assert [m for m in mounts.values() if not m.get("readOnly")] == [mounts["/srv/cmrqc/users/alice"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JUPYTERHUB_USER"] == "alice" and env["CMRQC_ROOT"] == "/srv/cmrqc"
    every = container, *pod["spec"].get("initContainers", [])
    for each in every:  # no container of the pod runs as root or can become root
        context = each.get("securityContext", {})
        assert context.get("runAsUser", 0) != 0 and context.get("allowPrivilegeEscalation") is False
        assert not context.get("privileged")
    assert pod["spec"]["automountServiceAccountToken"] is False
    k8s_validate(pod)


def test_each_reviewers_pod_mounts_only_their_own_folder(values, monkeypatch):
    """bob's pod mounts users/bob, never users/alice."""
    pod = pod_manifest(values, "bob", monkeypatch)
    sub_paths = [m.get("subPath") for m in pod["spec"]["containers"][0]["volumeMounts"]]
    assert "users/bob" in sub_paths and not any("alice" in str(p) for p in sub_paths)


def test_the_chart_default_would_add_a_root_init_container(values, monkeypatch):
    """Why our values switch blockWithIptables off: the chart's default adds a privileged root container."""
    values["singleuser"]["cloudMetadata"]["blockWithIptables"] = True
    pod = pod_manifest(values, "alice", monkeypatch)
    (init,) = pod["spec"]["initContainers"]
    assert init["securityContext"]["runAsUser"] == 0 and init["securityContext"]["privileged"] is True


def test_the_manifest_validation_can_fail(values, monkeypatch):
    """kubernetes-validate refuses a pod whose mount lacks its name and one with an unknown field."""
    kv = pytest.importorskip("kubernetes_validate")
    pod = pod_manifest(values, "alice", monkeypatch)
    broken = copy.deepcopy(pod)
    del broken["spec"]["containers"][0]["volumeMounts"][0]["name"]
    with pytest.raises(kv.ValidationError):
        k8s_validate(broken)
    extra = copy.deepcopy(pod)
    extra["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kv.ValidationError):
        k8s_validate(extra)
