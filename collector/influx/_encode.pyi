from collections.abc import Callable
from typing import Any

class FieldCache:
    def __init__(self, make: Callable[[Any], str], limit: int = ...) -> None: ...
    def __len__(self) -> int: ...

def lines(
    heads: list[str], caches: list[FieldCache], cols: list[list[Any]], ts_suffix: str
) -> list[str]: ...
