"""Test support for projects that use migrator: a pytest plugin (:mod:`migrator.testing.plugin`, loaded by
pytest through the ``pytest11`` entry point) with fixtures over the local sandbox. See docs/testing.md."""
