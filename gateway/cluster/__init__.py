"""What gateway processes share through Redis (§8.3): the connection, outage handling, the event bus."""
