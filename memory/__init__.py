"""Switchboard: memory."""
