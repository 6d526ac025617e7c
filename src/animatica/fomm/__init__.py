"""The First Order Motion Model networks, configs and checkpoints (depends on torch only)."""
