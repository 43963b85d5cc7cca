"""Contract stand-ins of the images Antipode's DeathStarBench stack runs (see ../README.md)."""
