"""The target as the suite reaches it: byte-exact transport, exchanges as evidence, the cancel API."""
