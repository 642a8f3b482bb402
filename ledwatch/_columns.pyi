from typing import Any

FLOAT: int
INT: int
BOOL: int
STR: int
NONE: int

def check(
    col: list[Any], allowed: int, lo: float, hi: float, minlen: int, maxlen: int
) -> bool: ...
def to_doubles(cols: list[list[Any]], out: Any) -> None: ...
