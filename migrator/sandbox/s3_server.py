"""``python -m migrator.sandbox.s3_server``: the S3 endpoint's process entry point, by the name that
``migrator sandbox up`` (:mod:`migrator.sandbox.control`) starts it with. The endpoint itself is the package
:mod:`migrator.sandbox.s3`; this module only runs its ``main``."""

import sys

from migrator.sandbox.s3.server import main

if __name__ == "__main__":
    sys.exit(main())
