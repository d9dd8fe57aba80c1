"""``python -m migrator.sandbox.s3_server``: the S3 endpoint's process entry point, by the name that
``migrator sandbox up`` (:mod:`migrator.sandbox.control`) starts it with. The endpoint itself is the package
:mod:`migrator.sandbox.s3`; this module only runs its ``main``."""

import sys

from migrator.sandbox.serve import EXIT_MISSING_EXTRA

if __name__ == "__main__":
    try:
        from migrator.sandbox.s3.server import main
    except ImportError as exc:  # moto[server] (and its werkzeug) come with the [sandbox] extra only
        print(f"the S3 endpoint needs the [sandbox] extra: {exc}", file=sys.stderr)
        sys.exit(EXIT_MISSING_EXTRA)
    sys.exit(main())
