"""``python -m migrator.sandbox.oci_emulator``: the OCI emulator's process entry point, by the name that
``migrator sandbox up`` (:mod:`migrator.sandbox.control`) and the tests start it with. The emulator itself is
the package :mod:`migrator.sandbox.oci`; this module only runs its ``main``."""

import sys

from migrator.sandbox.oci.server import main

if __name__ == "__main__":
    sys.exit(main())
