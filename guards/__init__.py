"""Switchboard: guards."""
