"""LEDwatch: the wire contract and the command line shared by agent, collector and emulators."""

__version__ = "0.1.0"
