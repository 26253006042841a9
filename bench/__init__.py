"""Switchboard: bench."""
