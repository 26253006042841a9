"""Switchboard: evals."""
