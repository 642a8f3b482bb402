"""The deploy/ files agree with each other and with the code that reads them.

Docker and Grafana cannot run here, so compose.yaml is checked as data: what it mounts
exists, every port is on 127.0.0.1 by default, and the collector config it mounts is
accepted by the collector's own settings loader. The systemd units go through
`systemd-analyze verify` when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.settings import parse_settings
from collector.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Made by the operator (see mosquitto/README.md, tls/make-dev-certs.sh), never committed.
GENERATED = {DEPLOY / "mosquitto" / "passwd", DEPLOY / "tls" / "out"}


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def defaults(text: str) -> str:
    """Expand `${VAR:-default}` to its default and `${VAR:?msg}` to a placeholder."""
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{\w+:\?[^}]*\}", "set-in-env", text)


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "postgres", "collector"}
    assert services["collector"]["build"]["context"] == ".."
    assert (DEPLOY / ".." / services["collector"]["build"]["dockerfile"]).is_file()


def test_every_port_is_on_loopback_by_default() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            published = defaults(str(port))
            assert published.startswith("127.0.0.1:"), f"{name}: {port} -> {published}"


def test_compose_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                continue  # a named volume
            path = (DEPLOY / source).resolve()
            if any(path == g or g in path.parents for g in GENERATED):
                continue
            assert path.exists(), f"{name}: {source} does not exist"


def test_grafana_mounts_match_provisioning() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    provider = yaml.safe_load(
        (ROOT / "dashboards" / "provisioning" / "dashboards" / "ledwatch.yaml").read_text()
    )["providers"][0]
    assert mounts["../dashboards/json"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (ROOT / "dashboards" / "json" / Path(home).name).is_file()
    datasource = yaml.safe_dump(
        yaml.safe_load((ROOT / "dashboards/provisioning/datasources/ledwatch.yaml").read_text())
    )
    for var in re.findall(r"\$\{(\w+)\}", datasource):
        assert var in grafana["environment"], f"{var} is not set for grafana"


def test_dockerfile_copies_existing_paths() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:  # not another stage's
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_collector_toml_is_accepted_and_matches_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = compose()["services"]["collector"]["environment"]
    for var in env:
        monkeypatch.setenv(var, "a-test-secret-of-16+chars")
    settings = load_settings(DEPLOY / "collector.toml")
    assert settings.mqtt.host == "mosquitto"
    assert settings.mqtt.tls is not None
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(rf"^listener {settings.mqtt.port}$", conf, re.M)
    acl = (DEPLOY / "mosquitto" / "acl").read_text()
    assert f"user {settings.mqtt.username}\n" in acl
    mounted = [v.split(":")[1] for v in compose()["services"]["collector"]["volumes"]]
    assert str(settings.mqtt.tls.ca_file) in mounted
    assert "/etc/ledwatch/collector.toml" in mounted
    assert settings.influx.output == "v2"


def test_scripts_parse() -> None:
    for script in (DEPLOY / "tls" / "make-dev-certs.sh", DEPLOY / "influxdb" / "init-v1.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_dev_certs_default_clients(tmp_path: Path) -> None:
    subprocess.run(
        ["sh", str(DEPLOY / "tls" / "make-dev-certs.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    names = {p.name for p in tmp_path.iterdir()}
    assert {"ca.crt", "server.crt", "server.key", "client-ledwatch.collector.crt"} <= names
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("unit", ["ledwatch-agent.service", "ledwatch-collector.service"])
def test_systemd_unit(unit: str, tmp_path: Path) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    for line in ("Restart=always", "DynamicUser=yes", "NoNewPrivileges=yes"):
        assert f"\n{line}\n" in text
    assert re.search(r"^StateDirectory=ledwatch-", text, re.M)
    assert re.search(r"^LoadCredential=mqtt-password:/etc/ledwatch/mqtt-password$", text, re.M)
    # The config path the comment tells you to use is where systemd puts the credential.
    assert f"/run/credentials/{unit}/mqtt-password" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart exists; point it at a binary that does.
    copy = tmp_path / unit
    copy.write_text(text.replace("/opt/ledwatch/bin/ledwatch", "/bin/true"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True
    )
    problems = [ln for ln in result.stderr.splitlines() if unit in ln and "Failed to" not in ln]
    assert not problems, result.stderr


def test_winsw_xml() -> None:
    root = ET.parse(DEPLOY / "windows" / "ledwatch-agent.xml").getroot()
    assert root.tag == "service"
    assert root.findtext("id") == "ledwatch-agent"
    assert root.findtext("executable", "").endswith("ledwatch.exe")
    assert "agent --config" in root.findtext("arguments", "")
    assert [e.get("action") for e in root.findall("onfailure")] == ["restart"] * 3
    assert root.findtext("logpath")
    assert root.findtext("startmode") == "Automatic"


def test_windows_readme_config_is_valid(tmp_path: Path) -> None:
    """The agent.toml shown in the Windows guide is accepted by the agent's loader."""
    readme = (DEPLOY / "windows" / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    data = tomllib.loads(block.group(1))
    assert data["screens"][0]["controller"]["url"] == "serial://COM3?baud=115200"
    assert data["mqtt"]["password_file"].startswith("C:\\ProgramData\\")
    secret = tmp_path / "mqtt-password.txt"
    secret.write_text("pw\n")
    data["mqtt"]["password_file"] = str(secret)
    settings = parse_settings(data, base_dir=tmp_path)
    assert settings.username == data["agent"]["site"]
