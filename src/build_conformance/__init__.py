"""build-conformance: the conformance suite for POST /v1/templates/builds/{build_id}/cancel.

The package's folders follow a run: `harness` (pytest plugin, the run, preflight) drives `target`
(the bytes on the wire), `provisioning` (builds in a chosen status) and `inputs` (generated probes);
`judging` turns what came back into per-requirement verdicts; `reporting` writes them out.
`reference` is the reference server, a separate room. docs/architecture.md has the picture.
"""
