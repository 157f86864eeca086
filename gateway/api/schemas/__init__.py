"""OpenAI wire models: validation of what clients send. Unknown fields are kept."""
