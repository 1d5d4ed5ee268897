"""fences package."""
