"""Animation engines behind one protocol (see ``base.py``)."""
