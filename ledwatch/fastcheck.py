"""A fast first check of a JSON Schema for columnar documents; fastjsonschema stays the judge.

fastjsonschema's generated code checks every array element with several `isinstance`
calls: ~1,200 calls and most of the decode time for one 30-cabinet snapshot. Telemetry
is columnar (an array per reading), so the same constraints can be checked per column
at C speed: `set(map(type, column))` for the element types, `min`/`max` for ranges and
lengths. `compile_check(schema)` generates one straight-line Python function for the
keywords our schemas use, and refuses (CompileError) any other keyword, so it can never
silently ignore one.

Where the install built ledwatch/_columns.pyx, a column of scalars is one call into C
instead (`_columns.check`: types and bounds in one loop, ~5x less for a snapshot); the
Python code above stays as its fallback and as the reference the tests hold it to.

The checker may be *stricter* than the schema (it rejects an integer written as 1.0,
which JSON Schema accepts), never looser. Callers use it as a fast path only: a
document it accepts is valid; one it rejects goes to fastjsonschema, which decides and
says what is wrong (`ledwatch.contract.validate_telemetry`).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import Any

from ledwatch.compiled import columns as _columns

Check = Callable[[Any], bool]
# The C pass over a column (ledwatch/_columns.pyx) where the install built it.
COMPILED = _columns is not None

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),  # exact type checks: a bool is not an integer here
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_KNOWN = {
    "$schema", "$id", "title", "description", "type", "required", "properties",
    "additionalProperties", "items", "const", "enum", "minimum", "maximum", "minLength",
    "maxLength", "pattern", "$ref", "definitions",
}
_SCALAR = {"type", "minimum", "maximum", "minLength", "maxLength", "pattern", "description",
           "enum"}


class CompileError(ValueError):
    """The schema uses a keyword this checker does not implement."""


class _Gen:
    def __init__(self, schema: dict[str, Any], compiled: bool) -> None:
        self.definitions = schema.get("definitions", {})
        self.compiled = compiled
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.n = 0

    def name(self, prefix: str, value: Any = None) -> str:
        self.n += 1
        name = f"{prefix}{self.n}"
        if value is not None:
            self.consts[name] = value
        return name

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is None:
            return node
        if not ref.startswith("#/definitions/"):
            raise CompileError(f"unsupported $ref {ref!r}")
        return self.resolve(self.definitions[ref.removeprefix("#/definitions/")])

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def types(self, node: dict[str, Any]) -> frozenset[type] | None:
        t = node.get("type")
        if t is None:
            return None
        names = [t] if isinstance(t, str) else list(t)
        return frozenset(cls for name in names for cls in _TYPES[name])

    def node(self, node: dict[str, Any], var: str, ind: int) -> None:
        """Emit code that returns False unless `var` satisfies `node`."""
        node = self.resolve(node)
        unknown = set(node) - _KNOWN
        if unknown:
            raise CompileError(f"unsupported keywords {sorted(unknown)}")
        types = self.types(node)
        if types is not None:
            self.emit(ind, f"if type({var}) not in {self.name('T', types)}: return False")
        if "const" in node:
            c = self.name("C", node["const"])
            self.emit(ind, f"if type({var}) is not type({c}) or {var} != {c}: return False")
        if "enum" in node:
            e = self.name("E", tuple(node["enum"]))
            self.emit(ind, f"if not any(type({var}) is type(x) and {var} == x for x in {e}): "
                           "return False")
        num = "(int, float)"
        if "minimum" in node:
            self.emit(ind, f"if type({var}) in {num} and {var} < {node['minimum']!r}: "
                           "return False")
        if "maximum" in node:
            self.emit(ind, f"if type({var}) in {num} and {var} > {node['maximum']!r}: "
                           "return False")
        if "minLength" in node:
            self.emit(ind, f"if type({var}) is str and len({var}) < {node['minLength']}: "
                           "return False")
        if "maxLength" in node:
            self.emit(ind, f"if type({var}) is str and len({var}) > {node['maxLength']}: "
                           "return False")
        if "pattern" in node:
            rx = self.name("R", re.compile(node["pattern"]))
            self.emit(ind, f"if type({var}) is str and {rx}.search({var}) is None: return False")
        if "items" in node:
            self.emit(ind, f"if type({var}) is list:")
            self.items(self.resolve(node["items"]), var, ind + 1)
        if {"properties", "required", "additionalProperties"} & set(node):
            self.emit(ind, f"if type({var}) is dict:")
            self.obj(node, var, ind + 1)
        self.emit(ind, "pass")

    def items(self, items: dict[str, Any], var: str, ind: int) -> None:
        types = self.types(items)
        if set(items) - _SCALAR or types is None or dict in types or list in types:
            x = self.name("x")
            self.emit(ind, f"for {x} in {var}:")
            self.node(items, x, ind + 1)
            return
        if self.compiled and self.column_in_c(items, types, var, ind):
            return
        # A column of scalars: element types at once, then ranges over the non-null ones
        # (filtered in Python only when a null is actually there).
        # A column is nearly always of one type: counting it (~18 ns an element) is
        # cheaper than a set of types (~26 ns); only a mixed column builds the set.
        seen, tl = self.name("t"), self.name("l")
        main = next(cls for cls in (float, int, str, bool, type(None)) if cls in types)
        self.emit(ind, f"{tl} = list(map(type, {var}))")
        self.emit(ind, f"if {tl}.count({self.name('C', main)}) == len({tl}): "
                       f"{seen} = {self.name('S', frozenset({main}))}")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{seen} = set({tl})")
        self.emit(ind + 1, f"if not {seen} <= {self.name('T', types)}: return False")
        if "enum" in items:
            e = self.name("E", frozenset(items["enum"]))
            self.emit(ind, f"if not set({var}) <= {e}: return False")
        bounds = [k for k in ("minimum", "maximum", "minLength", "maxLength", "pattern")
                  if k in items]
        if not bounds:
            return
        vals = self.name("v")
        if type(None) in types:
            self.emit(ind, f"{vals} = [x for x in {var} if x is not None] "
                           f"if NoneType in {seen} else {var}")
        else:
            self.emit(ind, f"{vals} = {var}")
        self.emit(ind, f"if {vals}:")
        if "minimum" in items:
            self.emit(ind + 1, f"if min({vals}) < {items['minimum']!r}: return False")
        if "maximum" in items:
            self.emit(ind + 1, f"if max({vals}) > {items['maximum']!r}: return False")
        if "minLength" in items or "maxLength" in items:
            lens = self.name("n")
            self.emit(ind + 1, f"{lens} = list(map(len, {vals}))")
        if "minLength" in items:
            self.emit(ind + 1, f"if min({lens}) < {items['minLength']}: return False")
        if "maxLength" in items:
            self.emit(ind + 1, f"if max({lens}) > {items['maxLength']}: return False")
        if "pattern" in items:
            rx = self.name("R", re.compile(items["pattern"]))
            self.emit(ind + 1, f"if not all(map({rx}.search, {vals})): return False")

    def column_in_c(self, items: dict[str, Any], types: frozenset[type], var: str,
                    ind: int) -> bool:
        """Emit one `_columns.check` call for the column, if it can say all of `items`
        (not `enum` or `pattern`; bounds that are exact doubles)."""
        assert _columns is not None
        if {"enum", "pattern"} & set(items):
            return False
        lo, hi = items.get("minimum", -math.inf), items.get("maximum", math.inf)
        if float(lo) != lo or float(hi) != hi:
            return False
        bits = {float: _columns.FLOAT, int: _columns.INT, bool: _columns.BOOL,
                str: _columns.STR, type(None): _columns.NONE}
        allowed = sum(bits[cls] for cls in types)
        minlen, maxlen = items.get("minLength", 0), items.get("maxLength", sys.maxsize)
        self.emit(ind, f"if not column({var}, {allowed}, {float(lo)!r}, {float(hi)!r}, "
                       f"{minlen}, {maxlen}): return False")
        return True

    def obj(self, node: dict[str, Any], var: str, ind: int) -> None:
        for key in node.get("required", ()):
            self.emit(ind, f"if {key!r} not in {var}: return False")
        props = node.get("properties", {})
        for key, sub in props.items():
            x, missing = self.name("p"), self.name("M", _MISSING)
            self.emit(ind, f"{x} = {var}.get({key!r}, {missing})")
            self.emit(ind, f"if {x} is not {missing}:")
            self.node(sub, x, ind + 1)
        extra = node.get("additionalProperties", True)
        if extra is True:
            return
        known = self.name("K", frozenset(props))
        k, x = self.name("k"), self.name("x")
        self.emit(ind, f"for {k}, {x} in {var}.items():")
        self.emit(ind + 1, f"if {k} in {known}: continue")
        if extra is False:
            self.emit(ind + 1, "return False")
        else:
            self.node(extra, x, ind + 1)


_MISSING = object()


def compile_check(schema: dict[str, Any], compiled: bool = COMPILED) -> Check:
    """A function doc -> bool (True: certainly valid). `compiled`: check scalar columns
    with ledwatch._columns (the default where it is built); False gives the Python path."""
    if compiled and _columns is None:
        raise CompileError("ledwatch._columns is not built (no C compiler at install)")
    gen = _Gen(schema, compiled)
    gen.node(schema, "doc", 1)
    source = "def check(doc):\n" + "\n".join(gen.lines) + "\n    return True\n"
    namespace: dict[str, Any] = {"NoneType": type(None), "inf": math.inf, **gen.consts}
    if _columns is not None and compiled:
        namespace["column"] = _columns.check
    exec(compile(source, "<ledwatch.fastcheck>", "exec"), namespace)
    check: Check = namespace["check"]
    check.__doc__ = "Generated by ledwatch.fastcheck; True means certainly valid.\n\n" + source
    return check
