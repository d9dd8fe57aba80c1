"""``python -m migrator.sandbox.s3_server``: the S3 endpoint's process entry point, by the name that
``migrator sandbox up`` (:mod:`migrator.sandbox.control`) starts it with. The endpoint itself is the package
:mod:`migrator.sandbox.s3`; this module only runs its ``main``."""

import importlib
import sys

from migrator.sandbox.serve import EXIT_MISSING_EXTRA

# What the [sandbox] extra brings (moto[server]: moto's WSGI app, werkzeug, flask), imported before anything
# else so that only their absence, never a bug of ours, is reported as the missing extra.
_EXTRA_MODULES = ("werkzeug.serving", "moto.moto_server.werkzeug_app")

if __name__ == "__main__":
    for module in _EXTRA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            print(f"the S3 endpoint needs the [sandbox] extra ({module}: {exc})", file=sys.stderr)
            sys.exit(EXIT_MISSING_EXTRA)
    from migrator.sandbox.s3.server import main

    sys.exit(main())
