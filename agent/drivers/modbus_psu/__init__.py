"""Smart PSUs on Modbus RTU/TCP: fills a screen snapshot's `psus` section (see README.md)."""

from agent.drivers.modbus_psu.reader import ModbusPsuOptions, ModbusPsuReader

__all__ = ["ModbusPsuOptions", "ModbusPsuReader"]
