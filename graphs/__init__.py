"""Switchboard: graphs."""
