"""Fake upstreams that speak the real APIs' shapes, served over real HTTP on 127.0.0.1."""
