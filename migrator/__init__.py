"""migrator: move regulated objects into OCI Object Storage and prove the sources are gone."""

__version__ = "0.1.0"
