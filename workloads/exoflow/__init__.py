"""The local ExoFlow mechanism (engine.py) and the drivers of the paper's Figures 6 and 8 over it."""
