"""``python -m harness.tools.bench``: the link benchmark (`harness.tools.bench.link.main`)."""
import sys

from harness.tools.bench.link import main

sys.exit(main())
