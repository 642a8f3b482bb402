"""Shared fixtures: real Mosquitto, VictoriaMetrics, InfluxDB 1.x, Alertmanager, Prometheus,
PostgreSQL, Tinyproxy, socat ptys, a headless Chromium.

The servers come from `scripts/services.py`; each runs on 127.0.0.1 on a free port with
its data in pytest's tmp dir. Session-scoped servers are shared by every test, so tests
keep their data apart by using their own site ids / topics, not by wiping the server.
A test may `stop()` a shared server (outage tests); it is started again after the test.

A missing server binary fails the run when CI=true (a skipped suite must not look green)
and skips the test elsewhere, telling you to run `make test`, which installs them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import services  # noqa: E402  (scripts/services.py, found through the path set above)
from services import (  # noqa: E402
    Alertmanager,
    InfluxDB1,
    Mosquitto,
    PostgreSQL,
    Prometheus,
    PtyPair,
    Service,
    Tinyproxy,
    VictoriaMetrics,
)

SERVICE_FIXTURES = {
    "postgresql",
    "ticket_db_url",
    "mosquitto",
    "victoria",
    "influxdb1",
    "pty_pair",
    "fresh_mosquitto",
    "fresh_victoria",
    "fresh_influxdb1",
    "fresh_alertmanager",
    "fresh_tinyproxy",
    "prometheus",
    "promtool",
    "browser",
}

# Session servers, so the autouse fixture below can bring back one a test stopped.
_SESSION: list[Service] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(command: str) -> None:
    """Fail (CI) or skip (elsewhere) when a server binary is not installed."""
    if services.binary(command) is not None:
        return
    msg = f"{command} is not installed; run `make test` (it runs scripts/services.py install)"
    if in_ci():
        pytest.fail(f"CI=true and {msg}", pytrace=False)
    pytest.skip(msg)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real server, so `-m "not services"` runs the pure ones."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a TCP port free on 127.0.0.1 (call again for a second one)."""
    return services.free_port


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Shared Mosquitto 2.x broker, anonymous, `.host`/`.port`; `.stop()`/`.start()` keep port."""
    require("mosquitto")
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        _SESSION.append(broker)
        yield broker


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """Shared VictoriaMetrics (the InfluxDB 2.x write API stand-in): `.url`, `.flush()`,
    `.export(match)`."""
    require("victoria-metrics")
    with VictoriaMetrics(tmp_path_factory.mktemp("victoria")) as vm:
        _SESSION.append(vm)
        yield vm


@pytest.fixture(scope="session")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """Shared InfluxDB 1.x, auth ON: `.url .username .password .database`, `.query(q)`,
    `.write(lines)`, `.rows(q)`."""
    require("influxd")
    with InfluxDB1(tmp_path_factory.mktemp("influxdb1")) as db:
        _SESSION.append(db)
        yield db


@pytest.fixture(scope="session")
def postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgreSQL]:
    """Shared PostgreSQL 15 (a private cluster): `.create_database(name)` -> its URL."""
    require("postgres")
    with PostgreSQL(tmp_path_factory.mktemp("postgresql")) as db:
        _SESSION.append(db)
        yield db


_PG_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def ticket_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ticket database: a SQLite file, then (second run) PostgreSQL.

    The ticket-service and API suites use it, so they run against both backends.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tickets.db'}"
    server: PostgreSQL = request.getfixturevalue("postgresql")
    return server.create_database(f"t{os.getpid()}_{next(_PG_DATABASES)}")


@pytest.fixture(autouse=True)
def _restart_stopped_session_servers() -> Iterator[None]:
    """A test that stopped a shared server (an outage test) must not break the next test."""
    yield
    for svc in _SESSION:
        if not svc.is_running():
            svc.start()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    """Two linked pseudo-terminals (socat): open `.a` on one side, `.b` on the other."""
    require("socat")
    pair = services.socat_pty_pair(tmp_path / "pty")
    yield pair
    pair.stop()


ServiceT = TypeVar("ServiceT", bound=Service)


def _started_each(tmp_path: Path, prefix: str, build: Callable[..., ServiceT]
                  ) -> Iterator[Callable[..., ServiceT]]:
    """The factory of a `fresh_*` fixture: `make(*args, **kwargs)` builds a private server
    with `build(folder, *args, **kwargs)` in a folder of its own and returns it started;
    every server it made is stopped after the test."""
    made: list[ServiceT] = []

    def make(*args: Any, **kwargs: Any) -> ServiceT:
        server = build(tmp_path / f"{prefix}-{len(made)}", *args, **kwargs)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Factory for a private broker with custom config, stopped after the test.

    `fresh_mosquitto(extra_conf="allow_anonymous false\\npassword_file /x", port=None)`
    returns it started; `extra_conf` goes after its 127.0.0.1 listener (see Mosquitto).
    """
    require("mosquitto")

    def build(folder: Path, extra_conf: str = "", port: int | None = None) -> Mosquitto:
        return Mosquitto(folder, port=port, extra_conf=extra_conf)

    yield from _started_each(tmp_path, "mosquitto", build)


@pytest.fixture
def fresh_victoria(tmp_path: Path) -> Iterator[Callable[[], VictoriaMetrics]]:
    """Factory for a private, empty VictoriaMetrics (started), stopped after the test."""
    require("victoria-metrics")

    def build(folder: Path) -> VictoriaMetrics:
        return VictoriaMetrics(folder)

    yield from _started_each(tmp_path, "victoria", build)


@pytest.fixture
def fresh_tinyproxy(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """Factory for a private Tinyproxy (started): `fresh_tinyproxy(auth=("u", "p"))`;
    `.url`, `.requests()` (the request lines it received). Stopped after the test."""
    require("tinyproxy")

    def build(folder: Path, auth: tuple[str, str] | None = None) -> Tinyproxy:
        return Tinyproxy(folder, auth=auth)

    yield from _started_each(tmp_path, "tinyproxy", build)


@pytest.fixture
def fresh_influxdb1(tmp_path: Path) -> Iterator[Callable[..., InfluxDB1]]:
    """Factory for a private, empty InfluxDB 1.x (started, auth on unless `auth=False`)."""
    require("influxd")

    def build(folder: Path, auth: bool = True) -> InfluxDB1:
        return InfluxDB1(folder, auth=auth)

    yield from _started_each(tmp_path, "influxdb1", build)


@pytest.fixture
def fresh_alertmanager(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """Factory for a private Alertmanager (started) that routes every alert to one webhook.

    `fresh_alertmanager(webhook_url, group_wait_s=1.0, group_interval_s=1.0, ...)`: see
    services.Alertmanager; `.url`, `.alerts()`. Stopped after the test.
    """
    require("prometheus-alertmanager")

    def build(folder: Path, webhook_url: str, **options: float) -> Alertmanager:
        return Alertmanager(folder, webhook_url=webhook_url, **options)

    yield from _started_each(tmp_path, "alertmanager", build)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Factory for a private Prometheus (started) scraping the given `/metrics` URLs.

    `prometheus({"agent": "http://127.0.0.1:PORT/metrics", ...}, scrape_interval_s=1.0)`:
    see services.Prometheus; `.url`, `.query(promql)`, `.targets_health()`. Stopped after
    the test.
    """
    require("prometheus")

    def build(folder: Path, targets: dict[str, str], scrape_interval_s: float = 1.0
              ) -> Prometheus:
        return Prometheus(folder, targets=targets, scrape_interval_s=scrape_interval_s)

    yield from _started_each(tmp_path, "prometheus", build)


@pytest.fixture
def promtool() -> str:
    """Path of Prometheus' `promtool` (`promtool check metrics` lints an exposition)."""
    require("promtool")
    return services.binary("promtool") or "promtool"


# Headless Chromium on a closed network: without the background-networking flags it
# keeps trying (and failing) to reach Google's update, sync and safe-browsing servers.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A Selenium WebDriver on Debian's chromium + chromedriver with a fresh profile in
    tmp_path; `quit()` after the test stops both (bounded: 30 s page loads)."""
    require("chromium")
    require("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as ChromeService
    except ImportError:
        msg = "selenium is not installed; run `make test` (it installs '.[dev]')"
        if in_ci():
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    options = webdriver.ChromeOptions()
    options.binary_location = services.binary("chromium") or "chromium"
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    service = ChromeService(
        executable_path=services.binary("chromedriver") or "chromedriver",
        log_output=str(tmp_path / "chromedriver.log"),
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()
