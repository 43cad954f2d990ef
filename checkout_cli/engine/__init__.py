"""The embedded engine: the checkout flow over one SQLite file. No CLI, no HTTP, no terminal."""
