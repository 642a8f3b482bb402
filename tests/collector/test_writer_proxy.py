"""The HTTP sinks through a real forward proxy (Tinyproxy) and to a real HTTPS server
(VictoriaMetrics with a certificate of a test CA): `influx.proxy`, `influx.ca_file`.

Each test proves the path it claims: the proxy asks for credentials (a request that
bypassed it would not be refused), its log holds the request line, and the points are
read back from the server."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from services import VictoriaMetrics, binary

from collector.influx.connections import Route
from collector.influx.errors import WriteError
from collector.influx.writers import V1Writer, V2Writer, make_writer
from collector.settings import InfluxSettings, load_settings
from ledwatch.errors import ConfigError

NOW_MS = int(time.time() * 1000) // 1000 * 1000
# Without credentials Tinyproxy answers 407 and closes at once: the client sees that
# answer, or, when it is still sending the body, a reset connection (as with Squid).
REFUSED = r"HTTP 407|407 Proxy Authentication Required|ConnectionResetError|BrokenPipeError"
AUTH = ("lw-user", "s3cret.pass")  # Tinyproxy takes [-a-z0-9._] only


def _proxy_url(proxy: Any, with_auth: bool = True) -> str:
    if not with_auth:
        return proxy.url
    return proxy.url.replace("http://", f"http://{AUTH[0]}:{AUTH[1]}@")


def _stored(vm: VictoriaMetrics, site: str) -> list[float]:
    vm.flush()
    return [v for s in vm.export(f'probe_value{{site="{site}"}}') for v in s["values"]]


def _write(writer: Any, site: str) -> None:
    writer.connect()
    try:
        writer.write([f"probe,site={site} value=1.5 {NOW_MS}"])
    finally:
        writer.close()


@pytest.fixture
def tls_victoria(tmp_path: Path, fresh_victoria: Any) -> Iterator[tuple[VictoriaMetrics, Path]]:
    """VictoriaMetrics serving HTTPS only, with a certificate for 127.0.0.1 from a test
    CA; yields it and the CA's PEM file."""
    if binary("victoria-metrics") is None:
        pytest.skip("victoria-metrics is not installed; run `make test`")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    vm = VictoriaMetrics(tmp_path / "vm-tls", tls=(cert_file, key_file), ca_file=ca_file)
    with vm:
        yield vm, ca_file


def test_plain_http_goes_through_the_proxy_with_its_credentials(
    fresh_victoria: Callable[[], VictoriaMetrics], fresh_tinyproxy: Callable[..., Any],
) -> None:
    vm, proxy = fresh_victoria(), fresh_tinyproxy(auth=AUTH)
    settings = InfluxSettings(output="v2", url=vm.url, bucket="b", proxy=_proxy_url(proxy))
    _write(make_writer(settings), "via-proxy")  # the settings' path to the writer
    assert _stored(vm, "via-proxy") == [1.5]
    assert any(r.startswith(f"POST {vm.url}/api/v2/write?") for r in proxy.requests()), \
        proxy.requests()
    # ping goes the same way (the /health check of a collector behind a proxy)
    writer = V2Writer(vm.url, None, "o", "b", proxy=_proxy_url(proxy))
    writer.connect()
    assert writer.ping()
    writer.close()
    assert any(r.startswith(f"GET {vm.url}/ping") for r in proxy.requests())

    without = V2Writer(vm.url, None, "o", "b", proxy=_proxy_url(proxy, with_auth=False))
    with pytest.raises(WriteError, match=REFUSED) as info:
        _write(without, "no-credentials")
    assert info.value.retryable  # the batch is kept until the credentials are fixed
    assert _stored(vm, "no-credentials") == []


def test_https_goes_through_a_connect_tunnel_and_checks_the_certificate(
    tls_victoria: tuple[VictoriaMetrics, Path], fresh_tinyproxy: Callable[..., Any],
) -> None:
    vm, ca_file = tls_victoria
    proxy = fresh_tinyproxy(auth=AUTH)
    host_port = vm.url.removeprefix("https://")
    _write(V2Writer(vm.url, None, "o", "b", proxy=_proxy_url(proxy), ca_file=ca_file),
           "tunnel")
    assert _stored(vm, "tunnel") == [1.5]
    # Only the CONNECT is seen by the proxy: the request itself is inside TLS.
    assert [r for r in proxy.requests() if r.startswith(f"CONNECT {host_port} ")], \
        proxy.requests()
    assert not any("/api/v2/write" in r for r in proxy.requests())

    # Directly too, with the same CA file (a server of an in-house CA, no proxy).
    _write(V1Writer(vm.url, "db", ca_file=ca_file), "direct-tls")  # /write: VM takes both
    assert _stored(vm, "direct-tls") == [1.5]

    # The system's CAs do not know the test CA: refused, and kept for a retry.
    with pytest.raises(WriteError, match="CERTIFICATE_VERIFY_FAILED") as info:
        _write(V2Writer(vm.url, None, "o", "b", proxy=_proxy_url(proxy)), "untrusted")
    assert info.value.retryable
    # Nor does the tunnel's proxy get to see what it carries without its credentials.
    with pytest.raises(WriteError, match="407 Proxy Authentication Required"):
        _write(V2Writer(vm.url, None, "o", "b", proxy=_proxy_url(proxy, with_auth=False),
                        ca_file=ca_file), "untrusted")
    assert _stored(vm, "untrusted") == []


def test_proxy_env_follows_http_proxy_and_no_proxy(
    fresh_victoria: Callable[[], VictoriaMetrics], fresh_tinyproxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vm, proxy = fresh_victoria(), fresh_tinyproxy(auth=AUTH)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", _proxy_url(proxy))
    _write(V2Writer(vm.url, None, "o", "b", proxy="env"), "env-proxy")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.setenv("HTTP_PROXY", _proxy_url(proxy, with_auth=False))  # would be 407
    _write(V2Writer(vm.url, None, "o", "b", proxy="env"), "env-bypass")
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(WriteError, match=REFUSED):
        _write(V2Writer(vm.url, None, "o", "b", proxy="env"), "env-refused")
    # The default ("") reads no environment: direct, whatever HTTP_PROXY says.
    _write(V2Writer(vm.url, None, "o", "b"), "env-ignored")
    monkeypatch.delenv("HTTP_PROXY")
    assert [r for r in proxy.requests() if "/api/v2/write" in r] == [
        f"POST {vm.url}/api/v2/write?org=o&bucket=b&precision=ms HTTP/1.1",  # env-proxy
        f"POST {vm.url}/api/v2/write?org=o&bucket=b&precision=ms HTTP/1.1",  # env-refused
    ]
    for site in ("env-proxy", "env-bypass", "env-ignored"):
        assert _stored(vm, site) == [1.5], site
    assert _stored(vm, "env-refused") == []


@pytest.mark.parametrize(("option", "error"), [
    ('proxy = "socks5://127.0.0.1:1080"', r"influx\.proxy.*http://"),
    ('proxy = "https://127.0.0.1:3128"', r"influx\.proxy.*http://"),
    ('proxy = "http://127.0.0.1:port"', r"influx\.proxy.*port is not a number"),
    ('ca_file = "/nonexistent/ca.pem"', r"influx\.ca_file.*not a file"),
])
def test_a_bad_proxy_or_ca_file_fails_at_start_naming_the_option(
    tmp_path: Path, option: str, error: str,
) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f'[influx]\noutput = "v2"\nurl = "https://127.0.0.1:1"\n{option}\n')
    with pytest.raises(ConfigError, match=error):
        load_settings(path)


def test_a_bad_proxy_in_the_environment_fails_at_start_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    path = tmp_path / "collector.toml"
    path.write_text('[influx]\noutput = "v2"\nurl = "https://db.example"\nproxy = "env"\n')
    with pytest.raises(ConfigError, match=r"influx\.proxy.*HTTPS_PROXY=.*http://"):
        load_settings(path)
    with pytest.raises(ValueError, match=r"HTTPS_PROXY=.*http://"):  # made without settings
        V2Writer("https://db.example:8086", None, "o", "b", proxy="env")
    monkeypatch.setenv("NO_PROXY", "db.example")  # bypassed: not read, not refused
    assert load_settings(path).influx.proxy == "env"


def test_proxy_credentials_are_unquoted_and_targets_are_absolute_for_plain_http() -> None:
    route = Route("http://[::1]:8086/influx", proxy="http://us%40er:p%3Ass@127.0.0.1:3128")
    assert route.via == "127.0.0.1:3128"
    assert route.prefix == "http://[::1]:8086/influx"
    assert route.headers == {
        "Proxy-Authorization": "Basic " + base64.b64encode(b"us@er:p:ss").decode()}
    tunnel = Route("https://db.example/", proxy="http://127.0.0.1:3128")
    assert (tunnel.via, tunnel.prefix, tunnel.headers) == ("127.0.0.1:3128", "", {})
    assert Route("https://db.example:8443").via is None
