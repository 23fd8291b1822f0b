"""The model files `AndroidDevice.push_models` pushes: what a models manifest lists, checked on the host first,
and where each goes on the device; and the device's ``sha256sum`` answer, read back.

Pure apart from reading and hashing the local files. Only what pushing needs is read from the manifest, so a
manifest whose contract is being changed can still be pushed: checking the contract is
`harness.inference.models.load_manifest`'s job.

>>> parse_sha256sum("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /data/x.onnx\\r\\n")
{'/data/x.onnx': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'}
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from harness.inference.models import ManifestError, sha256_file

__all__ = ["DEFAULT_MODELS_DIR", "PushedFile", "manifest_files", "parse_sha256sum"]

#: Where `push_models` puts the models and the manifest (the shell user may write below /data/local/tmp).
DEFAULT_MODELS_DIR = "/data/local/tmp/dtg/models"
_SHA256_LINE = re.compile(r"([0-9a-f]{64}) [ *](.*)")


@dataclass(frozen=True)
class PushedFile:
    """A file `push_models` pushed and verified: `name` is the model's name, or "manifest"."""

    name: str
    local_path: Path
    device_path: str
    sha256: str
    bytes: int



def manifest_files(manifest_path: Path, device_dir: str) -> list[PushedFile]:
    """The manifest's model files (every entry of ``models``: ``file``, ``sha256``) and the manifest itself.

    Model files keep their path relative to the manifest below `device_dir`. Each local file is checked against
    the manifest first: a local mismatch raises ManifestError before anything is sent."""
    try:
        raw = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise ManifestError(f"{manifest_path}: cannot read the manifest: {error}") from None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict) or not models:
        raise ManifestError(f"{manifest_path}: models: missing or empty")
    base = manifest_path.parent.resolve()
    files = []
    for name, entry in models.items():
        file, sha256 = (entry.get("file"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        if not isinstance(file, str) or not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ManifestError(f"{manifest_path}: models.{name}: needs 'file' and a 64-hex-digit 'sha256'")
        local = (base / file).resolve()
        if not local.is_file():
            raise ManifestError(f"{manifest_path}: models.{name}.file: {local} does not exist")
        actual = sha256_file(local)
        if actual != sha256:
            raise ManifestError(f"{manifest_path}: model '{name}' ({local.name}): sha256 mismatch on the host: "
                                f"manifest says {sha256}, file has {actual}; not pushed")
        relative = local.relative_to(base).as_posix() if local.is_relative_to(base) else local.name
        files.append(PushedFile(name, local, posixpath.join(device_dir, relative), sha256, local.stat().st_size))
    files.append(PushedFile("manifest", manifest_path, posixpath.join(device_dir, manifest_path.name),
                            sha256_file(manifest_path), manifest_path.stat().st_size))
    return files


def parse_sha256sum(output: str) -> dict[str, str]:
    """Device path -> sha256 of each line of ``sha256sum``'s output; lines of another form (a missing file's
    complaint) are left out."""
    on_device = {}
    for line in output.splitlines():
        match = _SHA256_LINE.fullmatch(line.rstrip("\r"))
        if match:
            on_device[match[2]] = match[1]
    return on_device
