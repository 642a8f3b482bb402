"""The optional compiled parts (Cython); everything else is in pyproject.toml.

`optional=True`: where no C compiler is found, the install goes on without them and the
code takes its pure-Python path (ledwatch/compiled.py; docs/hot-path.md, "Compiled
parts"). LEDWATCH_PURE_WHEEL=1 leaves them out on purpose: `make dist` builds the display
PCs' wheel that way, one py3-none-any file for Linux and Windows alike (the agent does
not need them; the collector's install and image build them).
"""

import os

from setuptools import Extension, setup

PURE = os.environ.get("LEDWATCH_PURE_WHEEL") == "1"

setup(
    ext_modules=[] if PURE else [
        Extension("ledwatch._columns", ["ledwatch/_columns.pyx"], optional=True),
        Extension("collector.influx._encode", ["collector/influx/_encode.pyx"], optional=True),
    ]
)
