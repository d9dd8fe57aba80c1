"""Named locations: the wave file's [locations], the qualified URI form, resolution and the estate digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import load_wave
from migrator.errors import InputError
from migrator.estate import Estate, LocationSpec, parse_locations
from migrator.manifest import validate
from migrator.uri import Location, parse_location, parse_uri

ESTATE = """
[locations.dc]
kind = "s3"
endpoint = "https://127.0.0.1:9100"
region = "us-east-1"
owner = "000000000042"
buckets = ["users", "media-*"]
addressing_style = "path"
profile = "dc"

[locations.aws-us]
kind = "s3"
region = "us-east-1"
buckets = ["users", "backups"]
profile = "aws"

[locations.gcp]
kind = "gs"
buckets = ["gcs-users"]

[locations.oci-us]
kind = "oci"
region = "us-ashburn-1"
owner = "ns"
buckets = ["us-*"]
config_file = "/tmp/oci/config"
"""


def _estate(tmp_path: Path, text: str = ESTATE) -> Estate:
    wave = tmp_path / "wave.toml"
    wave.write_text(text)
    return load_wave(wave, {}, {}).estate


def test_the_qualified_form_round_trips() -> None:
    for text in ("s3://dc@users/a@b/c", "oci://oci-us@ns/us-users/k", "gs://gcp@gcs-users/x"):
        uri = parse_uri(text)
        assert str(uri) == text and uri.at and "@" not in uri.bucket
    assert parse_uri("s3://users/a@b").at == ""   # '@' in a key is the key's
    assert str(parse_location("oci://oci-us@ns/us-users")) == "oci://oci-us@ns/us-users"
    assert parse_uri("s3://dc@users/k").location == Location("s3", "users", None, "dc")
    assert parse_uri("s3://dc@users/k").unplaced == parse_uri("s3://users/k")
    with pytest.raises(InputError, match="invalid location name"):
        parse_uri("s3://DC@users/k")


def test_a_uri_resolves_to_the_one_location_serving_its_bucket(tmp_path: Path) -> None:
    estate = _estate(tmp_path)
    assert str(estate.resolve(parse_uri("s3://media-2/k"))) == "s3://dc@media-2/k"
    assert str(estate.resolve(parse_uri("s3://backups/k"))) == "s3://aws-us@backups/k"
    assert str(estate.resolve(parse_uri("oci://ns/us-users/k"))) == "oci://oci-us@ns/us-users/k"
    assert str(estate.resolve(parse_uri("s3://dc@users/k"))) == "s3://dc@users/k"


def test_an_ambiguous_or_unserved_bucket_is_refused_with_the_forms_to_write(tmp_path: Path) -> None:
    estate = _estate(tmp_path)
    with pytest.raises(InputError, match=r"served by dc, aws-us: write s3://dc@users/k or s3://aws-us@users/k"):
        estate.resolve(parse_uri("s3://users/k"))
    with pytest.raises(InputError, match="no location serves s3://other"):
        estate.resolve(parse_uri("s3://other/k"))
    with pytest.raises(InputError, match="location 'oci-us' serves bucket 'us-users' in namespace 'ns' "
                                         "\\(its owner\\), not 'otherns'"):
        estate.resolve(parse_uri("oci://otherns/us-users/k"))   # the OCI owner is the namespace
    with pytest.raises(InputError, match="does not serve bucket 'backups'"):
        estate.resolve(parse_uri("s3://dc@backups/k"))
    with pytest.raises(InputError, match="does not serve"):
        estate.resolve(parse_uri("gs://dc@users/k"))            # dc is an S3 location
    with pytest.raises(InputError, match="no location named 'nope'"):
        estate.resolve(parse_uri("s3://nope@users/k"))
    with pytest.raises(InputError, match="but no locations are given"):
        Estate().resolve(parse_uri("s3://dc@users/k"))


def test_manifest_rows_resolve_and_errors_name_file_line_and_field(tmp_path: Path) -> None:
    estate = _estate(tmp_path)
    m = tmp_path / "m.csv"
    m.write_text("source,destination\ns3://media-1/a,oci://ns/us-users/a\ns3://users/b,oci://ns/us-users/b\n")
    with pytest.raises(InputError) as err:
        validate(m, estate=estate)
    assert (err.value.file, err.value.line, err.value.field) == (str(m), 3, "source")
    # One object written two ways is still one object.
    m.write_text("source,destination\ns3://media-1/a,oci://ns/us-users/a\ns3://dc@media-1/a,oci://ns/us-users/b\n")
    with pytest.raises(InputError, match="also the source at line 2"):
        validate(m, estate=estate)
    m.write_text("source,destination\ns3://dc@users/a,oci://ns/us-users/a\n")
    assert validate(m, estate=estate).sources_by_location == {"s3://dc@users": 1}


@pytest.mark.parametrize(("text", "field", "words"), [
    ('[locations.dc]\nbuckets = ["b"]\n', "locations.dc.kind", "want kind"),
    ('[locations.dc]\nkind = "azure"\nbuckets = ["b"]\n', "locations.dc.kind", "want kind"),
    ('[locations.dc]\nkind = "s3"\n', "locations.dc.buckets", "non-empty list"),
    ('[locations.dc]\nkind = "s3"\nbuckets = []\n', "locations.dc.buckets", "non-empty list"),
    ('[locations.dc]\nkind = "s3"\nbuckets = ["b"]\nregion = "US East"\n', "locations.dc.region", "region"),
    ('[locations.dc]\nkind = "s3"\nbuckets = ["b"]\nsecret = "x"\n', "locations.dc.secret", "unknown key"),
    ('[locations.dc]\nkind = "gs"\nbuckets = ["b"]\nprofile = "p"\n', "locations.dc.profile", "applies to s3, oci"),
    ('[locations.dc]\nkind = "s3"\nbuckets = ["b"]\naddressing_style = "dns"\n', "locations.dc.addressing_style",
     "path, virtual, auto"),
    ('[locations.dc]\nkind = "s3"\nbuckets = ["b"]\nendpoint = "127.0.0.1:9"\n', "locations.dc.endpoint", "http"),
    ('[locations.DC]\nkind = "s3"\nbuckets = ["b"]\n', "locations.DC", "location name"),
    ('[locations]\ndc = 3\n', "locations.dc", "want a table"),
])
def test_bad_locations_name_the_file_and_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    wave = tmp_path / "wave.toml"
    wave.write_text(text)
    with pytest.raises(InputError) as err:
        load_wave(wave, {}, {})
    assert err.value.file == str(wave) and err.value.field == field and words in str(err.value)


def test_the_binding_covers_identity_and_leaves_out_credentials_and_endpoints(tmp_path: Path) -> None:
    base = _estate(tmp_path).binding()
    assert _estate(tmp_path, ESTATE.replace('profile = "dc"', 'profile = "dc-rotated"')).binding() == base
    assert _estate(tmp_path, ESTATE.replace('config_file = "/tmp/oci/config"',
                                            'config_file = "/elsewhere"')).binding() == base
    # The same store by another hostname: information, not identity.
    assert _estate(tmp_path, ESTATE.replace("https://127.0.0.1:9100", "https://localhost:9100")).binding() == base
    assert _estate(tmp_path, ESTATE.replace('region = "us-ashburn-1"', 'region = "us-phoenix-1"')).binding() != base
    assert _estate(tmp_path, ESTATE.replace('owner = "000000000042"', 'owner = "1"')).binding() != base
    assert all(set(ident) == {"kind", "region", "owner", "buckets"} for ident in base.values())
    ident = LocationSpec("dc", "s3", ("b",), profile="secret-profile").identity()
    assert "secret-profile" not in str(ident) and set(ident) == {"name", "kind", "region", "owner", "endpoint",
                                                                 "buckets"}


def test_parse_locations_takes_tables_only() -> None:
    with pytest.raises(InputError, match=r"want \[locations\.NAME\] tables"):
        parse_locations(["dc"], file=None)


def test_a_bad_location_key_names_its_line_and_echoes_the_value(tmp_path: Path) -> None:
    wave = tmp_path / "wave.toml"
    wave.write_text('[policy]\nversions = "all"\n\n[locations.dc]\nkind = "minio"\nbuckets = ["b"]\n')
    with pytest.raises(InputError) as err:
        load_wave(wave, {}, {})
    assert (err.value.field, err.value.line) == ("locations.dc.kind", 5) and "got 'minio'" in str(err.value)
    assert err.value.diagnostics().startswith(f"{wave}, line 5, field 'locations.dc.kind': ")
    wave.write_text('[locations.dc]\nbuckets = ["b"]\n')   # no kind at all: the table's line
    with pytest.raises(InputError) as err:
        load_wave(wave, {}, {})
    assert (err.value.field, err.value.line) == ("locations.dc.kind", 1) and "got none" in str(err.value)


def test_a_locations_bad_oci_config_names_its_field(tmp_path: Path) -> None:
    import dataclasses

    from migrator.stores.registry import Stores

    spec = LocationSpec("oci-us", "oci", ("b",), config_file=str(tmp_path / "missing"))
    stores = Stores(dataclasses.replace(load_wave(None, {}, {}).stores, locations=(spec,)))
    with pytest.raises(InputError) as err:
        stores.get("oci", "oci-us")
    assert err.value.field == "locations.oci-us.config_file" and "location 'oci-us'" in str(err.value)
    assert str(tmp_path / "missing") in str(err.value)
