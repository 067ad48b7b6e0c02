"""`python -m build_conformance`: the same as the `build-conformance` command."""

import sys

from build_conformance.cli import main

sys.exit(main())
