"""Async image jobs (§4.6): run the normal images pipeline in the background, result kept in the database."""
