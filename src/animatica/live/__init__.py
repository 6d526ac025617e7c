"""Live mode: animating a portrait from a camera in real time (see ``session``).

The modules here are plain library code with no HTTP in them: the command line, the service
and the benchmark all run the same `session.LiveLoop`.
"""
