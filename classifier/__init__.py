"""Switchboard: classifier."""
