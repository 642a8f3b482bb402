# cython: language_level=3, boundscheck=False, wraparound=False
"""Columns of JSON scalars, checked and converted in one C pass each.

Telemetry is columnar (an array per reading), and the hot path walks each column twice
in Python's C-level builtins: ledwatch.fastcheck checks it (types, count, min, max:
three or four passes, ~50 ns an element) and detection turns it into float64 (numpy's
fromiter, ~30 ns). Here each is one loop at ~3 ns. Optional: where this module is not
built (no C compiler at install), both callers take their pure-Python path.
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsDouble, PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.math cimport NAN

# The `allowed` bits of `check`: one per exact type (a bool is not an int, as in fastcheck).
FLOAT = 1
INT = 2
BOOL = 4
STR = 8
NONE = 16

cdef long long _EXACT = 1LL << 53


def check(list col, int allowed, double lo, double hi, Py_ssize_t minlen, Py_ssize_t maxlen):
    """True if every element's type is in `allowed`, every number in [lo, hi] and every
    string's length in [minlen, maxlen].

    Stricter than JSON Schema, never looser: an int beyond 2**53 (not exactly a double)
    and a NaN are refused, and fastcheck's caller lets fastjsonschema decide."""
    cdef object x
    cdef Py_ssize_t length
    cdef double v
    cdef long long iv
    cdef int overflow = 0
    for x in col:
        if type(x) is float:
            if not (allowed & 1):
                return False
            v = PyFloat_AS_DOUBLE(x)
        elif type(x) is int:
            if not (allowed & 2):
                return False
            iv = PyLong_AsLongLongAndOverflow(x, &overflow)
            if overflow or iv > _EXACT or iv < -_EXACT:
                return False
            v = <double>iv
        elif type(x) is bool:
            if not (allowed & 4):
                return False
            continue
        elif type(x) is str:
            if not (allowed & 8):
                return False
            length = PyUnicode_GET_LENGTH(x)
            if length < minlen or length > maxlen:
                return False
            continue
        elif x is None:
            if not (allowed & 16):
                return False
            continue
        else:
            return False
        if not (v >= lo and v <= hi):  # a NaN fails too
            return False
    return True


def to_doubles(list cols, double[:, :] out):
    """Row i of `out` from the list cols[i] (each as long as a row): a float as itself, an
    int or a bool as its value, None as NaN (numpy's conversion of the same, checked in
    tests/collector/detect). Anything else raises TypeError, as numpy would for it."""
    cdef Py_ssize_t i, j, n = out.shape[1]
    cdef list col
    cdef object x
    if len(cols) != out.shape[0]:
        raise ValueError("one column per row of out")
    for i in range(len(cols)):
        col = cols[i]
        if len(col) != n:
            raise ValueError("a column's length is not the row's")
        for j in range(n):
            x = col[j]
            if type(x) is float:
                out[i, j] = PyFloat_AS_DOUBLE(x)
            elif type(x) is bool:
                out[i, j] = 1.0 if x is True else 0.0
            elif type(x) is int:
                out[i, j] = PyLong_AsDouble(x)
            elif x is None:
                out[i, j] = NAN
            else:
                raise TypeError(f"not a number: {type(x).__name__}")
