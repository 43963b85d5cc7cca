"""Pronghorn's function host stand-in (see README.md here); the runtime part runs under PyPy."""
