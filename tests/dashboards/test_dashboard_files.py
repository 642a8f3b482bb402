"""The dashboard JSON and provisioning YAML are well-formed and point at each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_files import (
    DATASOURCE_UID,
    PROVISIONING,
    annotations,
    by_stem,
    dashboard_files,
    influxql_queries,
    load,
    panel_titled,
    walk_panels,
)

from collector.detect.rules import RULES_BY_NAME

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
    assert len(uids) == len(set(uids)) == 6


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


# Panels that ship with Grafana (no plugin to install on the monitoring room's Grafana).
CORE_PANELS = {"row", "table", "timeseries", "stat", "bargauge", "gauge", "state-timeline",
               "status-history", "text", "barchart", "heatmap", "xychart", "canvas"}


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_only_core_panels(path: Path) -> None:
    for panel in walk_panels(load(path)["panels"]):
        assert panel["type"] in CORE_PANELS, f"{panel['title']!r}: {panel['type']}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_queries_follow_the_time_picker(path: Path) -> None:
    """No query pins itself to the wall clock: "now" panels end at `${__to}`, the end of
    the chosen range, so looking back at last night shows last night's wall and tickets."""
    for where, query in influxql_queries(load(path)):
        assert "now()" not in query, f"{where}: {query}"


def links(node: Any) -> list[dict[str, Any]]:
    """Every link (dashboard, panel, field, override) anywhere in the document."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("url"), str):
            found.append(node)
        for value in node.values():
            found += links(value)
    elif isinstance(node, list):
        for item in node:
            found += links(item)
    return found


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_desk_links_use_the_desk_url_variable(path: Path) -> None:
    """The desk's address differs per installation: every link to it goes through the
    hidden `desk_url` textbox (docs/dashboards.md says how provisioning sets it)."""
    doc = load(path)
    desk = [link["url"] for link in links(doc) if "/screens/" in link["url"]
            or "/tickets/" in link["url"]]
    if not desk:
        return
    assert all(url.startswith("${desk_url}/") for url in desk), desk
    (var,) = [v for v in doc["templating"]["list"] if v["name"] == "desk_url"]
    assert var["type"] == "textbox" and var["hide"] == 2
    assert var["query"].startswith("http") and not var["query"].endswith("/")
    assert var["current"]["value"] == var["query"]


def test_the_screen_links_to_its_desk_page() -> None:
    doc = by_stem("screen")
    url = "${desk_url}/screens/${site}/${screen}"
    assert url in [link["url"] for link in doc["links"]]
    grid = panel_titled(doc, "Cabinets as they hang")
    assert url in [link["url"] for link in grid["links"]]
    assert url in [link["url"] for link in grid["fieldConfig"]["defaults"]["links"]]
    for name in ("site", "screen"):
        (var,) = [v for v in doc["templating"]["list"] if v["name"] == name]
        assert not var["multi"] and not var["includeAll"], "the desk page is one screen"


def test_the_grid_warns_at_the_rules_clearing_levels() -> None:
    """Amber where the desk is amber: the detection rules' default clearing levels."""
    grid = panel_titled(by_stem("screen"), "Cabinets as they hang")
    warning = next(t["query"] for t in grid["targets"] if '+ 1 AS "state"' in t["query"])
    levels = {
        "temp_c": RULES_BY_NAME["card_temp_high"].clear_level,
        "humidity_pct": RULES_BY_NAME["card_humidity_high"].clear_level,
        "fan_rpm": RULES_BY_NAME["card_fan_stopped"].clear_level,
    }
    assert f'"temp_c" >= {levels["temp_c"]:g}' in warning
    assert f'"humidity_pct" >= {levels["humidity_pct"]:g}' in warning
    assert f'"fan_rpm" <= {levels["fan_rpm"]:g}' in warning
    for reading in ("door_open", "smoke"):
        assert f'"{reading}" = true' in warning


def test_screen_annotations() -> None:
    """Ticket changes and agent events on every time axis of the screen dashboard."""
    found = {a["name"]: a for a in annotations(by_stem("screen"))}
    assert set(found) == {"Tickets", "Agent events"}
    for anno in found.values():
        assert anno["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        target = anno["target"]
        assert target["rawQuery"] and target["fromAnnotations"]
        assert "$timeFilter" in target["query"]
        selected = target["query"].split(" FROM ")[0]
        for column in (target["textColumn"], target["titleColumn"],
                       *target["tagsColumn"].split(",")):
            assert f'"{column}"' in selected, (anno["name"], column)
