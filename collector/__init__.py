"""The collector: subscribes to agents, stores telemetry, detects faults, runs tickets."""
