"""Ed25519 signatures of a run's evidence: ``evidence.sig`` beside ``evidence.json``.

``fairderm verify`` shows that a run folder agrees with itself; it cannot
show who wrote it, since anyone with fairderm can write a consistent folder.
A signature closes that gap: the producer signs the evidence digest (the
SHA-256 of ``evidence.json``, which lists the SHA-256 of every other file)
with a private key, and a reviewer who holds the producer's public key checks
it with ``fairderm verify RUN --public-key KEY.pub``.

Keys are PEM files, as ``fairderm keygen`` or OpenSSL write them::

    openssl genpkey -algorithm ed25519 -out producer.key
    openssl pkey -in producer.key -pubout -out producer.pub

The signed message is ``fairderm.evidence-signature/1 sha256:<hex digest>``
(the prefix keeps a signature of a run from meaning anything else).
``evidence.sig`` (``format`` ``fairderm.signature/1``)::

    {"format", "algorithm": "ed25519", "evidence_sha256", "public_key_sha256", "signature" (base64)}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairderm._io import atomic_write_json, sha256_bytes, sha256_file
from fairderm.audit._evidence import EVIDENCE_FILE, SIGNATURE_FILE
from fairderm.errors import InputError

SIGNATURE_FORMAT = "fairderm.signature/1"
_MESSAGE_PREFIX = b"fairderm.evidence-signature/1 sha256:"


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of :func:`check_signature`: ``ok`` and why, in one line."""

    ok: bool
    detail: str


def evidence_digest(run_dir: str | Path) -> str:
    """Hex SHA-256 of a run folder's ``evidence.json``: the digest to publish or sign."""
    path = Path(run_dir) / EVIDENCE_FILE
    if not path.is_file():
        raise InputError(f"{EVIDENCE_FILE} not found: not an audit run folder", source=str(run_dir))
    return sha256_file(path)


def _message(digest: str) -> bytes:
    return _MESSAGE_PREFIX + digest.encode("ascii")


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_key_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError(f"{what} not found", source=str(path))
    return path.read_bytes()


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from an unencrypted PEM file (PKCS#8, as ``fairderm keygen`` writes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InputError("the private key is encrypted; give an unencrypted PEM key", source=str(path)) from None
    except ValueError:
        raise InputError("not a PEM private key", source=str(path)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"not an Ed25519 key ({type(key).__name__})", source=str(path))
    return key


def load_public_key(path: str | Path) -> Any:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo, as ``fairderm keygen`` writes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InputError("not a PEM public key", source=str(path)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"not an Ed25519 key ({type(key).__name__})", source=str(path))
    return key


def generate_key_pair(private_path: str | Path, public_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: the private key (mode 0600) and the public key (default ``<private>.pub``).

    Raises
    ------
    InputError
        When either file exists already (a key is never overwritten).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = Path(public_path) if public_path is not None else private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise InputError("exists already; a key is never overwritten", source=str(path))
        if not path.parent.is_dir():
            raise InputError("folder not found", source=str(path.parent))
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL: a file created meanwhile is not overwritten either; 0600 from the first byte on
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def sign_run(run_dir: str | Path, private_key: str | Path) -> dict[str, Any]:
    """Sign a run folder's evidence digest; write and return ``evidence.sig``.

    Sign after verifying: the signature vouches for the folder as it is.
    """
    run_dir = Path(run_dir)
    digest = evidence_digest(run_dir)
    key = load_private_key(private_key)
    record = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "evidence_sha256": digest,
        "public_key_sha256": sha256_bytes(_raw_public(key.public_key())),
        "signature": base64.b64encode(key.sign(_message(digest))).decode("ascii"),
    }
    atomic_write_json(run_dir / SIGNATURE_FILE, record)
    return record


def read_signature(run_dir: str | Path) -> dict[str, Any] | None:
    """``evidence.sig`` of a run folder, None when it has none.

    Raises
    ------
    InputError
        When the file is not a ``fairderm.signature/1`` record.
    """
    path = Path(run_dir) / SIGNATURE_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"not a signature file: {str(exc).splitlines()[0] if str(exc) else exc}",
                         source=str(path)) from None
    if not isinstance(record, dict) or record.get("format") != SIGNATURE_FORMAT:
        raise InputError(f"not a {SIGNATURE_FORMAT} file", source=str(path), column="format")
    return record


def check_signature(run_dir: str | Path, public_key: str | Path) -> SignatureCheck:
    """Whether ``evidence.sig`` is the holder of ``public_key``'s signature of the current ``evidence.json``.

    Raises
    ------
    InputError
        When the public key cannot be read.
    """
    from cryptography.exceptions import InvalidSignature

    key = load_public_key(public_key)
    try:
        record = read_signature(run_dir)
    except InputError as exc:
        return SignatureCheck(False, str(exc))
    if record is None:
        return SignatureCheck(False, f"no {SIGNATURE_FILE}: the run is not signed")
    digest = evidence_digest(run_dir)
    if record.get("evidence_sha256") != digest:
        return SignatureCheck(False, f"signs evidence {str(record.get('evidence_sha256'))[:12]}..., but "
                              f"{EVIDENCE_FILE} is {digest[:12]}...")
    try:
        signature = base64.b64decode(str(record.get("signature")), validate=True)
        key.verify(signature, _message(digest))
    except (InvalidSignature, binascii.Error, ValueError):
        return SignatureCheck(False, f"the signature is not by the holder of {Path(public_key).name}'s key")
    return SignatureCheck(True, f"signed by the holder of {Path(public_key).name}'s key "
                                f"(sha256 {sha256_bytes(_raw_public(key))[:12]}...)")
