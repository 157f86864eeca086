"""Admin API (§7), behind the admin token."""
