"""The dashboard JSON and provisioning YAML are well-formed and point at each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_files import (
    DATASOURCE_UID,
    PROVISIONING,
    dashboard_files,
    influxql_queries,
    load,
    walk_panels,
)

BUILTIN_UIDS = {"-- Grafana --", "grafana"}


def datasource_refs(node: Any) -> list[Any]:
    """Every value of a `datasource` key anywhere in the document."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found += datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += datasource_refs(item)
    return found


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_is_valid(path: Path) -> None:
    doc = load(path)
    assert doc["uid"].startswith("ledwatch-")
    assert doc["title"]
    assert 36 <= doc["schemaVersion"] <= 41
    assert doc["id"] is None, "provisioned dashboards must not carry a database id"
    panels = list(walk_panels(doc["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
    names = [v["name"] for v in doc["templating"]["list"]]
    assert "site" in names
    assert len(list(influxql_queries(doc))) >= 5


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_only_the_provisioned_datasource_is_used(path: Path) -> None:
    refs = datasource_refs(load(path))
    assert refs
    for ref in refs:
        assert isinstance(ref, dict), f"datasource by name {ref!r}: use {{type, uid}}"
        if ref.get("uid") in BUILTIN_UIDS:
            continue
        assert ref == {"type": "influxdb", "uid": DATASOURCE_UID}


def test_dashboard_uids_are_unique() -> None:
    uids = [load(p)["uid"] for p in dashboard_files()]
    assert len(uids) == len(set(uids)) == 4


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "ledwatch.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL"
    # Connection details come from the environment, never from the repository.
    assert ds["url"].startswith("${")
    assert ds["jsonData"]["dbName"].startswith("${")
    assert ds["secureJsonData"]["password"].startswith("${")


def test_dashboard_provisioning() -> None:
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "ledwatch.yaml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
