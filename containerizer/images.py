"""The agent's image store: container images unpacked into root filesystems, once each.

An image lives in ``<store>/`` as either a rootfs tarball (``<name>.tar``, ``<name>.tar.gz``,
``<name>.tgz``) or a local OCI image layout directory ``<name>/`` (``index.json`` and
``blobs/sha256/...``, as ``skopeo copy ... oci:<dir>`` writes). ``provision`` unpacks it into
``<store>/.rootfs/<name>/`` the first time and returns that path afterwards. The rootfs is a
shared, read-only-by-convention lower layer: containers write to an overlay on top of it.

Extraction is defensive, since images come from outside: absolute paths, ``..`` components,
links pointing out of the rootfs, device nodes and FIFOs are refused (the whole image is
rejected, naming the member), and layer digests are checked against the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import threading
from pathlib import Path, PurePosixPath

import structlog

log = structlog.get_logger("containerizer.images")

_TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_WHITEOUT = ".wh."
# Members are checked here (_check_member, _check_parents), so extraction must not filter them
# again. Pythons with extraction filters (3.11.4+, 3.12) are told so; older ones (Debian 12's
# python3 is 3.11.2) have no filter argument and never filter.
_NO_FILTER = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
_OPAQUE = ".wh..wh..opq"


class ImageError(Exception):
    """An image cannot be provisioned; ``image`` names it and the message says why."""

    def __init__(self, image: str, message: str) -> None:
        super().__init__(message)
        self.image = image


class UnknownImage(ImageError):
    """The store holds no image of that name (the message lists the ones it has)."""


class UnsafeImage(ImageError):
    """The image holds a member that could escape or subvert the rootfs; nothing is kept."""


class ImageStore:
    """Images in ``directory``, unpacked on first use. Blocking: call from an executor."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cache = self.directory / ".rootfs"
        self._lock = threading.Lock()  # one extraction at a time; provision may run in threads

    def images(self) -> list[str]:
        """Names of the images the store holds, sorted."""
        if not self.directory.is_dir():
            return []
        names = []
        for entry in self.directory.iterdir():
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and (entry / "index.json").is_file():
                names.append(entry.name)
            elif entry.is_file() and entry.name.endswith(_TARBALL_SUFFIXES):
                names.append(_strip_suffix(entry.name))
        return sorted(names)

    def provision(self, image: str) -> Path:
        """The unpacked rootfs of ``image``; unpacks it the first time (UnknownImage,
        UnsafeImage or ImageError when that cannot be done, leaving nothing behind)."""
        if not image or "/" in image or image.startswith("."):
            raise UnknownImage(image, f"image name {image!r} is invalid: expected a plain name")
        rootfs = self._cache / image
        with self._lock:
            if rootfs.is_dir():
                return rootfs
            source = self._find(image)
            partial = self._cache / f".{image}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            try:
                if source.is_dir():
                    for layer in _oci_layers(image, source):
                        _extract(image, layer, partial, whiteouts=True)
                else:
                    _extract(image, source, partial, whiteouts=False)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            partial.rename(rootfs)
        log.info("image_provisioned", image=image, source=str(source), rootfs=str(rootfs))
        return rootfs

    def _find(self, image: str) -> Path:
        layout = self.directory / image
        if (layout / "index.json").is_file():
            return layout
        for suffix in _TARBALL_SUFFIXES:
            tarball = self.directory / f"{image}{suffix}"
            if tarball.is_file():
                return tarball
        known = ", ".join(self.images()) or "none"
        raise UnknownImage(
            image,
            f"image {image!r} is not in the image store {self.directory} (it has: {known}); "
            f"put a rootfs tarball {image}.tar[.gz] or an OCI image layout directory {image}/ "
            "there",
        )


def _strip_suffix(name: str) -> str:
    for suffix in _TARBALL_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _oci_layers(image: str, layout: Path) -> list[Path]:
    """The layer blobs of an OCI image layout's (first) manifest, base layer first."""
    try:
        index = json.loads((layout / "index.json").read_text())
        manifests = index.get("manifests") or []
        if not manifests:
            raise ImageError(image, f"image {image!r}: index.json lists no manifest")
        manifest = json.loads(_blob(image, layout, manifests[0]["digest"]).read_text())
        layers = [_blob(image, layout, layer["digest"]) for layer in manifest["layers"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImageError(
            image, f"image {image!r}: {layout} is not a readable OCI image layout: {error!r}"
        ) from error
    return layers


def _blob(image: str, layout: Path, digest: str) -> Path:
    """The blob file for ``digest``, checked against it."""
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise ImageError(image, f"image {image!r}: unsupported digest {digest!r} (want sha256)")
    path = layout / "blobs" / "sha256" / value
    hasher = hashlib.sha256()
    with open(path, "rb") as blob:
        while chunk := blob.read(1 << 20):
            hasher.update(chunk)
    if hasher.hexdigest() != value:
        raise ImageError(
            image, f"image {image!r}: blob {path} does not match its digest {digest}: corrupt"
        )
    return path


def _extract(image: str, archive: Path, rootfs: Path, whiteouts: bool) -> None:
    """Unpack one tar (gzip'd or not) into ``rootfs``, refusing unsafe members."""
    with open(archive, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(archive, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                _check_member(image, member)
                path = PurePosixPath(member.name)  # pathlib drops "." components
                _check_parents(image, rootfs, path)
                if whiteouts and path.name.startswith(_WHITEOUT):
                    _apply_whiteout(rootfs, path)
                    continue
                target = rootfs / path
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()  # a later layer replaces the file
                tar.extract(member, rootfs, set_attrs=True, **_NO_FILTER)
    except (OSError, tarfile.TarError, EOFError) as error:
        raise ImageError(image, f"image {image!r}: cannot unpack {archive}: {error!r}") from error


def _check_member(image: str, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    why = None
    if name.is_absolute():
        why = "an absolute path"
    elif ".." in name.parts:
        why = "a '..' component"
    elif member.isdev() or member.isfifo():
        why = "a device node or FIFO"
    elif member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        if member.islnk() and (link.is_absolute() or ".." in link.parts):
            why = f"a hard link to {member.linkname!r}, outside the rootfs"
        elif member.issym() and not link.is_absolute():
            depth = len(name.parent.parts)
            for part in link.parts:
                depth += -1 if part == ".." else (0 if part == "." else 1)
                if depth < 0:
                    why = f"a symlink to {member.linkname!r}, outside the rootfs"
                    break
    if why is not None:
        raise UnsafeImage(
            image,
            f"image {image!r}: member {member.name!r} is {why}; refusing the whole image "
            "(rebuild it with relative paths inside the rootfs)",
        )


def _check_parents(image: str, rootfs: Path, path: PurePosixPath) -> None:
    """Refuse to write through a symlinked directory (``etc -> /etc`` then ``etc/passwd``
    would write on the host)."""
    current = rootfs
    for part in path.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafeImage(
                image,
                f"image {image!r}: member {str(path)!r} would be written through the symlink "
                f"{current.relative_to(rootfs)}; refusing the whole image",
            )


def _apply_whiteout(rootfs: Path, path: PurePosixPath) -> None:
    """``.wh.<name>`` deletes <name> from lower layers; ``.wh..wh..opq`` empties the dir."""
    directory = rootfs / path.parent
    if path.name == _OPAQUE:
        if directory.is_dir():
            for child in directory.iterdir():
                _remove(child)
        return
    _remove(directory / path.name[len(_WHITEOUT) :])


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
