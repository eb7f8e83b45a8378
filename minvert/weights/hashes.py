"""File hashes for downloads and for checking a file against the zoo (MD5, SHA-256, SHA-256 prefix)."""
import hashlib

from ..errors import MinvertError
from ..regular_files import open_regular

READ_SIZE = 1 << 20


def file_hashes(path, chunk=READ_SIZE):
    """{"md5": hex, "sha256": hex} of the file at ``path``, read in ``chunk``-byte pieces."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open_regular(path, "a file to hash") as f:  # a device would never end
        while buf := f.read(chunk):
            md5.update(buf)
            sha.update(buf)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def digest_file(path, hash_kind, chunk=READ_SIZE):
    """Hex digest of the file at ``path`` for ``hash_kind`` (md5, sha256, sha256-prefix)."""
    algo = {"md5": "md5", "sha256": "sha256", "sha256-prefix": "sha256"}.get(hash_kind)
    if algo is None:
        raise MinvertError(f"unknown hash kind '{hash_kind}'; use md5, sha256 or sha256-prefix")
    h = hashlib.new(algo)
    with open_regular(path, "a file to hash") as f:  # a device would never end
        while buf := f.read(chunk):
            h.update(buf)
    return h.hexdigest()


def hash_matches(digest, hash_kind, expected):
    """Whether ``digest`` is ``expected``; for sha256-prefix (torch.hub's rule), starts with it."""
    expected = expected.lower()
    return digest.startswith(expected) if hash_kind == "sha256-prefix" else digest == expected
