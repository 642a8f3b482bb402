"""The family registries: one line per family (Telegraf's `inputs.Add` pattern).

Three tables, each name -> "module:attribute", imported lazily so one family's
dependencies never load for another (nor at all when unused):

- `_REGISTRY`: controller drivers. The factory takes the screen's `[screens.controller]`
  table (already parsed TOML, minus the `driver` key) and returns a `Driver`; it
  validates its options once and raises `ConfigError` naming `controller.<key>`.
- `_PSU_SOURCES`: smart-PSU buses (`[[screens.psus]]`), each with the URL schemes it
  reads, so a table picks its family by its `url` (or by `source = "<name>"`). The
  attribute is a `PsuSourceFamily`: `parse` validates a table once (keys named from the
  prefix given), `create` builds the source from the validated options.
- `_DISCOVERY`: LAN searches for `ledwatch discover`; the attribute is a function
  `(agent.discover.Search) -> list[agent.discover.Found]`.

Nothing else in the agent names a family: settings, runtime and the CLIs ask here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.drivers.base import Driver, PsuSource, PsuSourceOptions
from ledwatch.errors import ConfigError

if TYPE_CHECKING:  # agent.discover imports this module
    from agent.discover import Found, Search

DriverFactory = Callable[[dict[str, Any]], Driver]

_REGISTRY: dict[str, str] = {
    "novastar": "agent.drivers.novastar.driver:create_driver",
    "colorlight": "agent.drivers.colorlight.driver:create_driver",
    "novastar-coex": "agent.drivers.novastar_coex.driver:create_driver",
    "brompton-tessera": "agent.drivers.brompton_tessera.driver:create_driver",
}
# name -> ("module:PsuSourceFamily", URL schemes it reads)
_PSU_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "modbus": ("agent.drivers.modbus_psu.reader:SOURCE", ("modbus-tcp", "modbus-rtu")),
}
_DISCOVERY: dict[str, str] = {
    "novastar": "agent.drivers.novastar.discover:discover",
    "colorlight": "agent.drivers.colorlight.discover:lan_search",
}


@dataclass(frozen=True, slots=True)
class PsuSourceFamily:
    """What a PSU source family registers (see the module docstring); `options_type` is
    the class `parse` returns, which tells `create_psu_source` whose options it holds."""

    parse: Callable[[Mapping[str, Any], str, Path | None], PsuSourceOptions]
    create: Callable[[Any], PsuSource]
    options_type: type


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def driver_names() -> list[str]:
    return sorted(_REGISTRY)


def create_driver(name: str, options: dict[str, Any]) -> Driver:
    """Build the driver registered under `name`; raise `ConfigError` for an unknown one."""
    target = _REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"controller.driver: unknown driver {name!r} (known: {driver_names()})")
    factory: DriverFactory = _load(target)
    return factory(options)


def psu_source_names() -> list[str]:
    return sorted(_PSU_SOURCES)


def psu_source(table: Mapping[str, Any], prefix: str) -> tuple[str, PsuSourceFamily]:
    """The family of one `[[screens.psus]]` table: its `source` key, else the family
    whose URL scheme its `url` uses. `ConfigError` names `<prefix>.source` / `.url`."""
    name = table.get("source")
    if name is not None:
        if name not in _PSU_SOURCES:
            raise ConfigError(f"{prefix}.source: unknown PSU source {name!r} "
                              f"(known: {psu_source_names()})")  # fmt: skip
    else:
        url = table.get("url")
        if not isinstance(url, str):
            raise ConfigError(f"{prefix}.url: required key is missing")
        scheme = urlsplit(url).scheme
        name = next((n for n, (_, schemes) in _PSU_SOURCES.items() if scheme in schemes), None)
        if name is None:
            known = sorted(s for _, schemes in _PSU_SOURCES.values() for s in schemes)
            raise ConfigError(f"{prefix}.url: scheme must be one of {', '.join(known)}, "
                              f"not {scheme!r}")  # fmt: skip
    family: PsuSourceFamily = _load(_PSU_SOURCES[name][0])
    return name, family


def parse_psu_source(
    table: Mapping[str, Any], prefix: str, base_dir: Path | None = None
) -> PsuSourceOptions:
    """Validate one `[[screens.psus]]` table with its family (once, at config load)."""
    _, family = psu_source(table, prefix)
    return family.parse({k: v for k, v in table.items() if k != "source"}, prefix, base_dir)


def create_psu_source(options: PsuSourceOptions) -> PsuSource:
    """Build the source for options `parse_psu_source` returned."""
    for target, _ in _PSU_SOURCES.values():
        if target.partition(":")[0] not in sys.modules:
            continue  # options come from `parse`, so their family's module is loaded
        family: PsuSourceFamily = _load(target)
        if isinstance(options, family.options_type):
            return family.create(options)
    raise ConfigError(f"no PSU source takes {type(options).__name__}")


def discovery_names() -> list[str]:
    return sorted(_DISCOVERY)


def discovery(name: str) -> Callable[[Search], list[Found]]:
    """The LAN search of family `name` (agent/discover.py runs it)."""
    search: Callable[[Search], list[Found]] = _load(_DISCOVERY[name])
    return search
