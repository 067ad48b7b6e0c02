# Running `pytest` from the repository root runs the conformance suite in tests/ with the plugin;
# `build-conformance run` loads the same plugin explicitly.
pytest_plugins = ["build_conformance.harness.plugin"]
