"""Write a real agent TOML for tests that run `ledwatch agent` (in-process or as a child)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_agent_config(
    tmp_path: Path,
    site: str,
    screens: Mapping[str, str | Mapping[str, Any]],
    host: str = "127.0.0.1",
    port: int = 1,
    interval: float = 0.2,
    **agent: Any,
) -> Path:
    """`screens` maps screen id -> NovaStar URL (2 ports x 3 cards, 2 PSU rails each), or
    -> a whole `[screens.controller]` table (any family: `driver`, `url`, ...).

    Extra keyword arguments become `[agent]` keys (JSON literals are valid TOML for
    strings, numbers and booleans). keepalive 5 s, the minimum, so a black-holed broker
    is noticed within 5..10 s.
    """
    lines = [
        "[agent]",
        'id = "pc1"',
        f'site = "{site}"',
        f"poll_interval_s = {interval}",
        'data_dir = "data"',
        *(f"{key} = {json.dumps(value)}" for key, value in agent.items()),
        "[mqtt]",
        f'host = "{host}"',
        f"port = {port}",
        "keepalive_s = 5",
    ]
    for screen, target in screens.items():
        lines += ["[[screens]]", f'id = "{screen}"', "[screens.controller]"]
        if not isinstance(target, str):
            lines += [f"{key} = {json.dumps(value)}" for key, value in target.items()]
            continue
        lines += [
            'driver = "novastar"',
            f'url = "{target}"',
            "ports = 2",
            "cards_per_port = 3",
            "psus_per_cabinet = 2",
            "timeout_ms = 200",
            "retries = 0",
        ]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
