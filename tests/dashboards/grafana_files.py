"""Where the dashboard files are and how to walk them (shared by the dashboard tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
JSON_DIR = DASHBOARDS / "json"
PROVISIONING = DASHBOARDS / "provisioning"
DATASOURCE_UID = "ledwatch-influxdb"


def dashboard_files() -> list[Path]:
    return sorted(JSON_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return doc


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def influxql_queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every raw InfluxQL query: template variables, panel targets and
    annotations."""
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            yield f"variable {var['name']}", query if isinstance(query, str) else query["query"]
    for panel, target in panel_targets(doc):
        yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["query"]
    for anno in annotations(doc):
        yield f"annotation {anno['name']!r}", anno["target"]["query"]


def panel_targets(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every raw InfluxQL target."""
    for panel in walk_panels(doc.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("rawQuery") and target.get("query"):
                yield panel, target


def annotations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's InfluxQL annotation queries (not Grafana's built-in one)."""
    return [a for a in doc.get("annotations", {}).get("list", []) if not a.get("builtIn")]


def by_stem(stem: str) -> dict[str, Any]:
    return load(JSON_DIR / f"{stem}.json")


def panel_titled(doc: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in walk_panels(doc["panels"]) if p["title"] == title]
    return panel
