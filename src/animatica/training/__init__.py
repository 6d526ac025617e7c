"""Training and evaluating FOMM on one's own videos, and the procedural data that needs no download."""
