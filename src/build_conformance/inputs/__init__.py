"""Generated probe inputs: credentials, ids of a learned shape, path segments, request bodies (pure)."""
