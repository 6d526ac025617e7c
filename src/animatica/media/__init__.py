"""Media: probing and validating inputs, streaming decode and encode, fitting frames to a size."""
