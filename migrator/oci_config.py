"""The OCI SDK's config file, read one way for the Object Storage store and the Vault (KMS) signer.

This is an application module: the entry point's settings hand ``load`` down (``StoreSettings.load_oci_config``
for the store registry, ``SignerSettings.load_oci_config`` for an ``ocikms:`` signer), and the store and the
signer take the config it returns as a value. So neither stores/ nor attest/ reads a config file, and both
report a bad one in the same words. ``load`` checks what the SDK's clients would check when they are made,
the private key included, so that making a client from its result does not fail on the config.

The path is always passed to the SDK explicitly (None = the SDK's default location): the SDK ignores
OCI_CONFIG_FILE when ~/.oci/config exists, so migrator takes the path from its own settings instead.

Secret-safe: a config file names key files and may hold pass phrases or key content, and the SDK's and
configparser's messages may quote its lines. No error here carries an SDK message or any of the file's
contents: each names the file, the profile, and the field or line number, and is raised ``from None`` so
that no chained exception carries them either.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable
from typing import Any, TypeVar

from migrator.errors import InputError

T = TypeVar("T")


def where(path: str | None, profile: str) -> str:
    """How errors name a config: the file and the profile."""
    import oci

    return f"OCI config {path or oci.config.DEFAULT_LOCATION} (profile {profile})"


def load(path: str | None, profile: str) -> dict[str, Any]:
    """The profile's settings, checked as the SDK's clients check them (fields, then the private key they
    name), or an InputError naming the file, the profile and the field."""
    import oci

    def read() -> dict[str, Any]:
        config: dict[str, Any] = oci.config.from_file(path or oci.config.DEFAULT_LOCATION, profile)
        oci.config.validate_config(config)
        if oci.util.AUTHENTICATION_TYPE_FIELD_NAME not in config:
            # An API-key profile: load the key as a client's constructor would (the signer it makes).
            oci.signer.Signer(tenancy=config["tenancy"], user=config["user"], fingerprint=config["fingerprint"],
                              private_key_file_location=config.get("key_file"),
                              pass_phrase=oci.config.get_config_value_or_default(config, "pass_phrase"),
                              private_key_content=config.get("key_content"))
        return config

    return guard(where(path, profile), read)


def guard(what: str, step: Callable[[], T]) -> T:
    """Run a step that reads the config or the private key it names, turning config and key problems into
    one secret-safe InputError. ``what`` names the config, e.g. ``where(path, profile)``."""
    try:
        return step()
    except Exception as exc:
        if not _is_config_problem(exc):   # not the config's fault: a bug, raised as it is
            raise
        raise InputError(f"{what}: {describe(exc)}", field="oci_config") from None


def _is_config_problem(exc: BaseException) -> bool:
    import oci

    return isinstance(exc, oci.exceptions.ClientError | configparser.Error | OSError | ValueError)


def describe(exc: BaseException) -> str:
    """A fixed description of a config problem: names of fields and line numbers, never values."""
    import oci

    e = oci.exceptions
    if isinstance(exc, e.ConfigFileNotFound):
        return "no such file"
    if isinstance(exc, e.ProfileNotFound):
        return "no such profile in the file"
    if isinstance(exc, e.InvalidKeyFilePath):
        return "field key_file does not name a file"
    if isinstance(exc, e.MissingPrivateKeyPassphrase):
        return "the key file is encrypted and the profile has no pass_phrase"
    if isinstance(exc, e.InvalidPrivateKey):
        return "field key_file is not a usable private key (or pass_phrase is wrong)"
    if isinstance(exc, e.InvalidConfig):
        problems = exc.args[0] if exc.args else None
        if isinstance(problems, dict) and problems:
            # The SDK maps field names to "missing" or "malformed"; both are its own words, not values.
            return "field(s) " + ", ".join(f"{k} {v if v in ('missing', 'malformed') else 'invalid'}"
                                           for k, v in sorted(problems.items()))
        return "invalid config"
    if isinstance(exc, configparser.Error):
        numbers = [n for n, _ in getattr(exc, "errors", [])] + [getattr(exc, "lineno", None)]
        lines = sorted({n for n in numbers if isinstance(n, int)})
        at = f" (line {', '.join(map(str, lines))})" if lines else ""
        return f"not a valid config file{at}"
    if isinstance(exc, UnicodeDecodeError):   # a ValueError; its offset is within a read chunk, not the file
        return "not valid UTF-8"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or type(exc).__name__}"
    return type(exc).__name__
