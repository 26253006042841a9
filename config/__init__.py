"""Switchboard: config."""
