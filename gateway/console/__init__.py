"""The web console's parts that know nothing of the app: session signing, static files and page templates.

The routes that serve them live in `gateway/api/console.py`; the console's pages call the admin API.
"""
