"""Driver registry: one line per controller family (Telegraf's `inputs.Add` pattern).

A family registers a factory taking the screen's `[screens.controller]` table (already
parsed TOML, minus the `driver` key) and returning a `Driver`. The factory validates its
options once and raises `ConfigError` naming the bad key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.drivers.base import Driver
from ledwatch.errors import ConfigError

DriverFactory = Callable[[dict[str, Any]], Driver]

_REGISTRY: dict[str, str] = {
    # name -> "module:factory"; imported lazily so one family's deps don't load the others.
    "novastar": "agent.drivers.novastar.driver:create_driver",
}


def driver_names() -> list[str]:
    return sorted(_REGISTRY)


def create_driver(name: str, options: dict[str, Any]) -> Driver:
    """Build the driver registered under `name`; raise `ConfigError` for an unknown one."""
    target = _REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"controller.driver: unknown driver {name!r} (known: {driver_names()})")
    module_name, _, attr = target.partition(":")
    import importlib

    factory: DriverFactory = getattr(importlib.import_module(module_name), attr)
    return factory(options)
