"""TLS for ``naestro serve``: the certificate and key are loaded once before the server starts.

uvicorn loads them itself, but only inside ``uvicorn.run``: a wrong path or a key that does not belong to the
certificate ends in a traceback, and a key protected by a passphrase makes OpenSSL prompt for it on the terminal,
which a systemd unit or a container does not have (the API then never listens). Loading them here first turns each
of those into a ``ConfigError`` that names the file and what to do.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from naestro.errors import ConfigError

__all__ = ["check_tls"]


class _Encrypted(Exception):
    """Raised from OpenSSL's passphrase callback, which is only called for an encrypted key."""


def _no_passphrase() -> str:
    raise _Encrypted


def check_tls(certfile: Path, keyfile: Path) -> None:
    """Raise ConfigError unless ``certfile`` (PEM, the chain) and ``keyfile`` (PEM, unencrypted) load together."""
    for path, flag in ((certfile, "--ssl-certfile"), (keyfile, "--ssl-keyfile")):
        if not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_passphrase)
    except _Encrypted:
        raise ConfigError(f"the key {keyfile} is encrypted with a passphrase, which `naestro serve` cannot ask for; "
                          f"write it unencrypted (`openssl pkey -in {keyfile} -out KEY.pem`, then `chmod 600 "
                          "KEY.pem`) or terminate TLS in a reverse proxy (deploy/Caddyfile)",
                          file=str(keyfile)) from None
    except ssl.SSLError as exc:
        raise ConfigError(f"{certfile} and {keyfile} do not load as a TLS certificate and its key "
                          f"({exc.reason or exc}): both must be PEM, and the key must be the certificate's",
                          file=str(certfile)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename or certfile}: {exc.strerror or exc}") from exc
