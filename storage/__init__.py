"""Storage seams shared by the stores (SQL dialects)."""
