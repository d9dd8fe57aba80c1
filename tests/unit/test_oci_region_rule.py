"""The OCI region's source of truth: only an official Object Storage hostname names a region. Nothing in
the sandbox can show it (its endpoints are 127.0.0.1:PORT, and /etc/hosts is never edited), so here."""

from __future__ import annotations

import pytest

from migrator.stores.oci import oci_region_from_endpoint


@pytest.mark.parametrize(("url", "region"), [
    ("https://objectstorage.us-ashburn-1.oraclecloud.com", "us-ashburn-1"),
    ("https://objectstorage.eu-frankfurt-1.oraclecloud.com/n/ns/b/bucket", "eu-frankfurt-1"),
    ("https://OBJECTSTORAGE.AP-SINGAPORE-1.ORACLECLOUD.COM", "ap-singapore-1"),
    ("objectstorage.uk-london-1.oraclecloud.com", "uk-london-1"),
    ("https://objectstorage.us-langley-1.oraclegovcloud.com", "us-langley-1"),
    ("https://objectstorage.us-gov-ashburn-1.oraclegovcloud.com", "us-gov-ashburn-1"),
    ("https://objectstorage.uk-gov-london-1.oraclegovcloud.uk", "uk-gov-london-1"),
    ("https://objectstorage.eu-frankfurt-2.oraclecloud2.com", "eu-frankfurt-2"),
])
def test_an_official_hostname_names_its_region(url: str, region: str) -> None:
    assert oci_region_from_endpoint(url) == region


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:9443",                                      # the sandbox
    "https://localhost:9443",
    "https://objectstorage.us-ashburn-1.oraclecloud.com.evil.example",   # a suffix is not the domain
    "https://objectstorage.us-ashburn-1.example.com",               # a custom host that names a region
    "https://ns.compat.objectstorage.us-ashburn-1.oraclecloud.com",  # the S3-compatible API: not this store
    "https://objectstorage.not a region.oraclecloud.com",
])
def test_any_other_host_names_none(url: str) -> None:
    assert oci_region_from_endpoint(url) is None
