"""``python -m migrator.sandbox.gcs_emulator``: the GCS emulator's process entry point, by the name that
``migrator sandbox up`` (:mod:`migrator.sandbox.control`) and the tests start it with. The emulator itself is
the package :mod:`migrator.sandbox.gcs`; this module only runs its ``main``."""

import sys

from migrator.sandbox.gcs.server import main

if __name__ == "__main__":
    sys.exit(main())
