"""Colorlight monitoring replies -> typed records (pure; None for what is missing).

Field names are those of the public Companion module's variable registry
(`ydev-clt/companion-module-colorlight-processor`, `src/variables/core/registry.ts`),
which names each command's top-level `data` keys. What is *inside*
the lists (`snd_eth.ports`, `mod_probe.modules`, `pr_rcv_state.modules`,
`pr_video.sources`) is not published; LEDwatch assumes the shapes below (marked ASSUMED,
and in docs/families.md), reads them defensively and yields None for anything else.

    sndinfo       {model, ver, brt 0..10000, ct K, temp, black 0/1, freeze 0/1, tp, ports}
    snd_eth       {n, ports: [{idx, linked 0/1}]}                       (inner ASSUMED)
    mfc_probe     {port, cardCount, temp, hwVer, swVer}
    rcv_probe     {port, rcv, type, w, h, linked 0/1, runtime, ver}
    mod_probe     {port, modules: [{rcv, count}]}                      (inner ASSUMED)
    pr_rcv_state  {port, modules: [{rcv, err}]}  err = faulty modules  (inner ASSUMED)
    pr_video      {srcTotal, sources: [{src, signal 0/1}]}             (inner ASSUMED)

Ports and receiving cards are 1-based on the wire (the module's options: "Output port
index (1-based)", "Receiver card index (1-based)"). Units: `temp` is taken as degrees
Celsius and `brt` as 1/100 % (the module turns `bright.brt` into a percentage by /100);
neither is stated for these commands, so both are ASSUMED. `runtime` has no published
unit and is kept raw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from firmware_protocols.jsonvals import flag as _flag
from firmware_protocols.jsonvals import integer as _int
from firmware_protocols.jsonvals import num as _num
from firmware_protocols.jsonvals import objects
from firmware_protocols.jsonvals import text as _str


def _items(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return objects(data.get(key))


@dataclass(frozen=True, slots=True)
class SenderInfo:
    model: str | None
    version: str | None
    brightness_pct: float | None
    color_temp_k: int | None
    temp_c: float | None
    blackout: bool | None
    freeze: bool | None
    test_pattern: int | None
    ports: int | None


def decode_sndinfo(data: Any) -> SenderInfo | None:
    if not isinstance(data, Mapping):
        return None
    brt = _num(data.get("brt"))
    ports = data.get("ports")
    return SenderInfo(
        model=_str(data.get("model")),
        version=_str(data.get("ver")),
        brightness_pct=None if brt is None or not 0 <= brt <= 10000 else round(brt / 100, 2),
        color_temp_k=_int(data.get("ct")),
        temp_c=_num(data.get("temp")),
        blackout=_flag(data.get("black")),
        freeze=_flag(data.get("freeze")),
        test_pattern=_int(data.get("tp")),
        ports=len(ports) if isinstance(ports, list) else _int(ports),
    )


@dataclass(frozen=True, slots=True)
class EthernetPorts:
    count: int | None
    linked: tuple[bool | None, ...]  # per port, in `idx` order


def decode_snd_eth(data: Any) -> EthernetPorts | None:
    if not isinstance(data, Mapping):
        return None
    ports = sorted(_items(data, "ports"), key=lambda p: _int(p.get("idx")) or 0)
    return EthernetPorts(_int(data.get("n")), tuple(_flag(p.get("linked")) for p in ports))


@dataclass(frozen=True, slots=True)
class MultifunctionCard:
    port: int | None
    card_count: int | None
    temp_c: float | None
    hw_version: str | None
    sw_version: str | None


def decode_mfc_probe(data: Any) -> MultifunctionCard | None:
    if not isinstance(data, Mapping):
        return None
    return MultifunctionCard(
        _int(data.get("port")),
        _int(data.get("cardCount")),
        _num(data.get("temp")),
        _str(data.get("hwVer")),
        _str(data.get("swVer")),
    )


@dataclass(frozen=True, slots=True)
class ReceiverCard:
    port: int | None
    rcv: int | None
    card_type: str | None
    width: int | None
    height: int | None
    linked: bool | None
    runtime_raw: int | None
    version: str | None


def decode_rcv_probe(data: Any) -> ReceiverCard | None:
    if not isinstance(data, Mapping):
        return None
    kind = data.get("type")
    return ReceiverCard(
        _int(data.get("port")),
        _int(data.get("rcv")),
        _str(kind) if isinstance(kind, str) else (str(kind) if _int(kind) is not None else None),
        _int(data.get("w")),
        _int(data.get("h")),
        _flag(data.get("linked")),
        _int(data.get("runtime")),
        _str(data.get("ver")),
    )


@dataclass(frozen=True, slots=True)
class PortModules:
    """Per receiving card (1-based `rcv`) of one port: a count from `mod_probe` (modules
    found) or from `pr_rcv_state` (modules in error)."""

    port: int | None
    per_card: Mapping[int, int]


def _port_modules(data: Any, key: str) -> PortModules | None:
    if not isinstance(data, Mapping):
        return None
    per_card: dict[int, int] = {}
    for m in _items(data, "modules"):
        rcv, n = _int(m.get("rcv")), _int(m.get(key))
        if rcv is not None and n is not None and n >= 0:
            per_card[rcv] = n
    return PortModules(_int(data.get("port")), per_card)


def decode_mod_probe(data: Any) -> PortModules | None:
    return _port_modules(data, "count")


def decode_pr_rcv_state(data: Any) -> PortModules | None:
    return _port_modules(data, "err")


@dataclass(frozen=True, slots=True)
class VideoInputs:
    total: int | None
    signal: tuple[bool | None, ...]  # per source, in `src` order

    @property
    def any_signal(self) -> bool | None:
        known = [s for s in self.signal if s is not None]
        return any(known) if known else None


def decode_pr_video(data: Any) -> VideoInputs | None:
    if not isinstance(data, Mapping):
        return None
    sources = sorted(_items(data, "sources"), key=lambda s: _int(s.get("src")) or 0)
    return VideoInputs(_int(data.get("srcTotal")), tuple(_flag(s.get("signal")) for s in sources))
