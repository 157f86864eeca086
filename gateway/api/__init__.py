"""HTTP surface: parse and authenticate, call the pipeline, shape the OpenAI answer."""
