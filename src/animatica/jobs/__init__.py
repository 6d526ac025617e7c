"""Animation jobs: the state machine in the database and the in-process runner."""
