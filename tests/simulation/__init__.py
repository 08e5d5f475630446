"""Deterministic simulation of the whole reconcile loop (see sim.py)."""
