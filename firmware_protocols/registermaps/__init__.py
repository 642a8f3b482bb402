"""Register maps of smart PSU models, one TOML file each (see docs/modbus-psu.md)."""
