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
