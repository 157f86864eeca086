"""Client authentication: token keys, the caller cache, rate and concurrency limits."""
