# Makes test modules here "drivers.<name>", so tests/agent/drivers/test_modbus_psu.py and
# tests/firmware_protocols/test_modbus_psu.py can share a basename (pytest prepend mode).
