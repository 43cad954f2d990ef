"""Operator workflows over any Backend (no terminal code): batch invoicing, smoke tests."""
