"""How the HTTP sinks reach their server: directly or through an HTTP proxy, and which
CAs an `https://` server's certificate is checked against.

Kept apart from the sinks (collector/influx/writers.py) because it is the deployment's
concern, not the data's: a collector beside its database connects directly (the
default); one at a customer's site that writes to a cloud InfluxDB may have to go
through the site's proxy (`influx.proxy`), and one that writes to a server with a
certificate of an in-house CA names that CA (`influx.ca_file`). docs/delivery.md.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROXY_FROM_ENV = "env"


def proxy_url(setting: str, scheme: str, host: str) -> urllib.parse.SplitResult | None:
    """The proxy a request to `scheme://host` goes through, or None to connect directly.

    `setting` is `influx.proxy`: "" (direct), "env" (HTTP_PROXY / HTTPS_PROXY / NO_PROXY,
    upper or lower case, read as curl and httpx read them) or `http://[user:password@]
    host[:port]`. Only plain-HTTP proxies: an `https://` server is reached through a
    CONNECT tunnel of one, with TLS end to end. ValueError names what is wrong."""
    if not setting:
        return None
    if setting == PROXY_FROM_ENV:
        found = urllib.request.getproxies_environment()
        url = found.get(scheme, "")
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not url or bypass(host, found):
            return None
        where = f"{scheme.upper()}_PROXY={url!r}"
    else:
        url, where = setting, f"proxy {setting!r}"
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{where}: a proxy is http://[user:password@]host[:port]")
    try:
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{where}: the port is not a number") from None
    return parts


def basic_credentials(user: str, password: str) -> str:
    """The value of an `Authorization` or `Proxy-Authorization` header (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Route:
    """Connections to one server (`url`), each made the same way, and the request target
    prefix that goes with them: `/path` directly or in a tunnel, `http://host:port/path`
    (absolute form) to a proxy that forwards plain HTTP."""

    url: str
    proxy: str = ""
    ca_file: Path | None = None
    prefix: str = field(init=False)
    headers: dict[str, str] = field(init=False)  # for every request on these connections
    _host: str = field(init=False)
    _port: int = field(init=False)
    _https: bool = field(init=False)
    _via: tuple[str, int] | None = field(init=False)
    _tunnel_headers: dict[str, str] = field(init=False)
    _tls: ssl.SSLContext | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.prefix = parts.path.rstrip("/")
        self.headers = {}
        self._via, self._tunnel_headers = None, {}
        via = proxy_url(self.proxy, parts.scheme, self._host)
        if via is None:
            return
        assert via.hostname is not None
        self._via = (via.hostname, via.port or 80)
        credentials = {}
        if via.username is not None:
            user, password = (urllib.parse.unquote(p) for p in (via.username, via.password or ""))
            credentials = {"Proxy-Authorization": basic_credentials(user, password)}
        if self._https:
            self._tunnel_headers = credentials  # on the CONNECT only, never to the server
        else:
            self.headers = credentials
            self.prefix = f"http://{_netloc(self._host, self._port)}{self.prefix}"

    @property
    def via(self) -> str | None:
        """host:port of the proxy in use, for logs; None when direct."""
        return None if self._via is None else _netloc(*self._via)

    def load_tls(self) -> None:
        """Reads the CAs once (the system's, or `ca_file` only): at connect(), not per
        connection, and so that a missing or unreadable file fails at start."""
        if self._https and self._tls is None:
            cafile = None if self.ca_file is None else str(self.ca_file)
            self._tls = ssl.create_default_context(cafile=cafile)

    def new(self, timeout_s: float) -> http.client.HTTPConnection:
        """A new connection, not yet open (http.client opens it on the first request)."""
        host, port = self._via or (self._host, self._port)
        if not self._https:
            return http.client.HTTPConnection(host, port, timeout=timeout_s)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=self._tls)
        if self._via is not None:
            conn.set_tunnel(self._host, self._port, headers=self._tunnel_headers)
        return conn
