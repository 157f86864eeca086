"""Upstream protocols: each provider translates requests and answers and makes the call."""
