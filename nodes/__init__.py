"""Switchboard: nodes."""
