"""checkout-cli: an operator's tool for a shop's checkout flow."""

__version__ = "0.1.0"
