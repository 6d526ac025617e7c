"""Animatica: bring a still picture to life with the motion of a driving video."""

__version__ = "0.1.0"
