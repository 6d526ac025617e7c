"""The LivePortrait networks, motion maths and checkpoints (depends on torch only)."""
