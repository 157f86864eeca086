"""OpenAI-compatible upstreams (OpenAI itself and the relays that copy its API)."""
