"""Statistics: intervals, stability checks, run comparison."""
