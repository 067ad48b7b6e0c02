"""Self-validation: the suite against the clean reference server and every deliberate fault."""
