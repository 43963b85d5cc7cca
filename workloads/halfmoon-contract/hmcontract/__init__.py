"""Contract-checking stand-ins for the real Halfmoon images (see ../README.md)."""
