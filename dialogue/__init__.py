"""Dialogue: the slots a message carries and the task a conversation is working on."""
