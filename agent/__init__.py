"""The agent: runs on a display control PC, polls controllers, publishes snapshots."""
