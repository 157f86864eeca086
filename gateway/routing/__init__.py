"""Which channel and key serve a request, in what order, and what a failure rules out."""
