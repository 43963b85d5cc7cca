"""A small serverless runtime that stands in for Boki/Halfmoon on one machine (see workloads/README.md)."""
