"""Prices, quota reservation and the usage record writer."""
