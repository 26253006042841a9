"""Switchboard: tools."""
