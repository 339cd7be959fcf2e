"""The FUSE layer: maps pyfuse3 operations onto the engine's API."""
