"""In-memory state: collections of objects by key."""
