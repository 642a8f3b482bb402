# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The columnar sections' lines (collector/influx/lineproto.py `_column_lines`) in C.

The Python path looks every reading up in a dict of cached `name=value` texts: ~90 ns a
reading here, most of it hashing a float object and calling `dict.__getitem__` through
`map`, then joins each line from a tuple `zip` made. This keys the same cache by the
reading's double (its 64 bits, one multiply to hash) and writes each line straight into
its string. The texts are the Python path's own (`make` is its formatter), so a line is
the same either way (tests/collector/test_lineproto.py holds both to a row-by-row
encoder).
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object)
    Py_UCS4 PyUnicode_READ_CHAR(object, Py_ssize_t)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_CopyCharacters(object, Py_ssize_t, object, Py_ssize_t,
                                        Py_ssize_t) except -1

cdef long long _EXACT = 1LL << 53


cdef inline uint64_t _mix(uint64_t h) noexcept:
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    return h


cdef class FieldCache:
    """Reading -> its `name=value` text, for one field: numbers and bools by their
    double's bits, anything else in a dict. Bounded like the Python path's: past
    `limit` entries it starts again, between two calls of `lines`."""

    cdef uint64_t* keys
    cdef PyObject** texts
    cdef Py_ssize_t mask, used, limit
    cdef object make
    cdef dict other

    def __cinit__(self, make, Py_ssize_t limit=20_000):
        self.make = make
        self.limit = limit
        self.other = {}
        self._alloc(64)

    cdef void _alloc(self, Py_ssize_t capacity) except *:
        self.keys = <uint64_t*>PyMem_Calloc(capacity, sizeof(uint64_t))
        self.texts = <PyObject**>PyMem_Calloc(capacity, sizeof(PyObject*))
        if self.keys == NULL or self.texts == NULL:
            raise MemoryError()
        self.mask = capacity - 1
        self.used = 0

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        if self.texts != NULL:
            for i in range(self.mask + 1):
                Py_XDECREF(self.texts[i])
        PyMem_Free(self.keys)
        PyMem_Free(self.texts)
        self.keys = NULL
        self.texts = NULL

    def __dealloc__(self):
        self._release()

    def __len__(self):
        return self.used + len(self.other)

    cdef void _restart_if_full(self) except *:
        if self.used + len(self.other) > self.limit:
            self._release()
            self._alloc(64)
            self.other = {}

    cdef void _grow(self) except *:
        cdef uint64_t* keys = self.keys
        cdef PyObject** texts = self.texts
        cdef Py_ssize_t old = self.mask + 1, i, slot
        self._alloc(old * 2)
        for i in range(old):
            if texts[i] != NULL:
                slot = <Py_ssize_t>(_mix(keys[i]) & <uint64_t>self.mask)
                while self.texts[slot] != NULL:
                    slot = (slot + 1) & self.mask
                self.keys[slot] = keys[i]
                self.texts[slot] = texts[i]  # the reference moves
                self.used += 1
        PyMem_Free(keys)
        PyMem_Free(texts)

    cdef PyObject* number(self, double v, object value) except NULL:
        """The text for a reading whose value is the double v (borrowed: the caller
        takes its own reference before running any Python code)."""
        cdef uint64_t bits
        memcpy(&bits, &v, sizeof(double))
        cdef PyObject* found = self._find(bits)
        if found != NULL:
            return found
        text = self.make(value)  # Python code: another thread may fill or restart us
        if type(text) is not str:
            raise TypeError("make must return a str")
        found = self._find(bits)  # so probe the tables again, as they are now
        if found != NULL:
            return found
        cdef Py_ssize_t slot = <Py_ssize_t>(_mix(bits) & <uint64_t>self.mask)
        while self.texts[slot] != NULL:
            slot = (slot + 1) & self.mask
        Py_INCREF(text)
        self.keys[slot] = bits
        self.texts[slot] = <PyObject*>text
        self.used += 1
        if self.used * 2 > self.mask + 1:
            self._grow()  # the reference moves with the entry
        return <PyObject*>text

    cdef inline PyObject* _find(self, uint64_t bits) noexcept:
        cdef Py_ssize_t slot = <Py_ssize_t>(_mix(bits) & <uint64_t>self.mask)
        while self.texts[slot] != NULL:
            if self.keys[slot] == bits:
                return self.texts[slot]
            slot = (slot + 1) & self.mask
        return NULL

    cdef PyObject* anything(self, object value) except NULL:
        text = self.other.get(value)
        if text is None:
            text = self.make(value)
            if type(text) is not str:
                raise TypeError("make must return a str")
            self.other[value] = text
        return <PyObject*>text


def lines(list heads, list caches, list cols, str ts_suffix):
    """One line per row: heads[i], then for each column j the text of cols[j][i] from
    caches[j] (None left out; a row that starts with a comma loses it), then ts_suffix.
    A row with no reading gives no line. Every column is as long as `heads`."""
    cdef Py_ssize_t n = len(heads), m = len(cols), i, j, k, total, pos, length, skip
    cdef Py_UCS4 maxchar, c
    cdef object x, line
    cdef PyObject* piece
    cdef FieldCache cache
    cdef long long iv
    cdef int overflow = 0
    cdef char* dst
    cdef list out = []
    if len(caches) != m:
        raise ValueError("one cache per column")
    for j in range(m):
        if len(<list>cols[j]) != n:
            raise ValueError("a column's length is not the heads'")
        (<FieldCache>caches[j])._restart_if_full()
    # The heads list and the suffix hold their pieces for the whole call; a cached text
    # is held by the row (another thread's call may restart a shared cache meanwhile,
    # while a formatter runs Python code).
    cdef PyObject** pieces = <PyObject**>PyMem_Malloc((m + 2) * sizeof(PyObject*))
    cdef Py_ssize_t held = 1  # pieces[1:held] are references of this row's
    if pieces == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            pieces[0] = <PyObject*>heads[i]
            k = 1
            held = 1
            for j in range(m):
                x = (<list>cols[j])[i]
                if x is None:
                    continue
                cache = <FieldCache>caches[j]
                if type(x) is float:
                    piece = cache.number(PyFloat_AS_DOUBLE(x), x)
                elif type(x) is bool:
                    piece = cache.number(1.0 if x is True else 0.0, x)
                elif type(x) is int:
                    iv = PyLong_AsLongLongAndOverflow(x, &overflow)
                    if overflow or iv > _EXACT or iv < -_EXACT:
                        piece = cache.anything(x)
                    else:
                        piece = cache.number(<double>iv, x)
                else:
                    piece = cache.anything(x)
                Py_INCREF(<object>piece)
                pieces[k] = piece
                k += 1
                held = k
            if k == 1:
                continue
            pieces[k] = <PyObject*>ts_suffix
            k += 1
            skip = 1 if (PyUnicode_GET_LENGTH(<object>pieces[1])
                         and PyUnicode_READ_CHAR(<object>pieces[1], 0) == 44) else 0
            total = -skip
            maxchar = 127
            for j in range(k):
                total += PyUnicode_GET_LENGTH(<object>pieces[j])
                c = PyUnicode_MAX_CHAR_VALUE(<object>pieces[j])
                if c > maxchar:
                    maxchar = c
            line = PyUnicode_New(total, maxchar)
            pos = 0
            if maxchar == 127:  # all ASCII (the common case): plain copies
                dst = <char*>PyUnicode_DATA(line)
                for j in range(k):
                    length = PyUnicode_GET_LENGTH(<object>pieces[j])
                    if j == 1 and skip:
                        memcpy(dst + pos, <char*>PyUnicode_DATA(<object>pieces[j]) + 1,
                               length - 1)
                        pos += length - 1
                    else:
                        memcpy(dst + pos, PyUnicode_DATA(<object>pieces[j]), length)
                        pos += length
            else:
                for j in range(k):
                    length = PyUnicode_GET_LENGTH(<object>pieces[j])
                    if j == 1 and skip:
                        PyUnicode_CopyCharacters(line, pos, <object>pieces[j], 1, length - 1)
                        pos += length - 1
                    else:
                        PyUnicode_CopyCharacters(line, pos, <object>pieces[j], 0, length)
                        pos += length
            out.append(line)
            for j in range(1, held):
                Py_XDECREF(pieces[j])
            held = 1
    finally:
        for j in range(1, held):
            Py_XDECREF(pieces[j])
        PyMem_Free(pieces)
    return out
