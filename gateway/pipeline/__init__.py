"""The stage order of each operation, and the one failover loop."""
