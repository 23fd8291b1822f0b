"""``python -m harness.wire.events LOGFILE|-``: check a saved logcat (`harness.wire.events.collector.main`)."""
import sys

from harness.wire.events.collector import main

sys.exit(main())
