"""The demo shop: authored knowledge base, intent examples and sample scenarios."""
