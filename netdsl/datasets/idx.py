"""The IDX format of MNIST, Fashion-MNIST and KMNIST: files to numpy arrays.

    from netdsl.datasets import idx
    images = idx.read_idx("mnist/train-images-idx3-ubyte.gz")     # uint8, 60000 x 28 x 28
    files = idx.find_idx_files("mnist/")       # the four files by their usual names (.gz or not)
    data = idx.load_idx_set("mnist/")          # train and t10k images and labels, checked

An IDX file is a magic number (two zero bytes, a type code, the number of dimensions), each
dimension as a big-endian uint32, then the values, big-endian, in C order. A file may be
gzipped; that is told from its first bytes, not from its name. Every fault is a NetError
naming the file and what is wrong with it.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import files
from ..errors import NetError

# type code -> big-endian numpy dtype (LeCun's page lists these six)
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
PARTS = ("train-images", "train-labels", "t10k-images", "t10k-labels")
_RANK = {"images": "idx3-ubyte", "labels": "idx1-ubyte"}


class IdxSet(NamedTuple):
    """A dataset in IDX files: uint8 images N x H x W and int64 labels N, for each split."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _read_bytes(path: Path) -> bytes:
    raw = files.read_input(path, "an IDX file")
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise NetError("the gzip stream is cut short (a truncated download?)", str(path)) from None
    except (OSError, zlib.error) as err:
        raise NetError(f"not a valid gzip file: {err}", str(path)) from None


def parse_idx(raw: bytes, where: str) -> np.ndarray:
    """The array in the (uncompressed) IDX bytes `raw`; `where` names them in errors."""
    if len(raw) < 4:
        raise NetError(f"too short for an IDX header ({len(raw)} bytes)", where)
    zero, code, rank = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0:
        raise NetError(f"bad magic number 0x{raw[:4].hex()}: an IDX file starts with two zero "
                       "bytes (is it an IDX file?)", where)
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise NetError(f"unknown IDX type code 0x{code:02X} (known: {known})", where)
    header = 4 + 4 * rank
    if len(raw) < header:
        raise NetError(f"the header promises {rank} dimensions but the file ends after "
                       f"{len(raw)} bytes", where)
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank))
    dtype = np.dtype(DTYPES[code])
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    shape = " x ".join(map(str, dims))
    if have < want:
        raise NetError(f"truncated: a {shape} array of {dtype.name} needs {want} bytes of data, "
                       f"the file holds {have}", where)
    if have > want:
        raise NetError(f"{have - want} bytes after the {shape} array the header describes", where)
    array = np.frombuffer(raw, dtype=dtype, count=want // dtype.itemsize, offset=header)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file, gzipped or not, in native byte order."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def _candidates(part: str) -> list[str]:
    """The names a part goes by: `train-images-idx3-ubyte`, also with `.` before `idx`, each
    with or without `.gz`."""
    stem, kind = part.rsplit("-", 1)
    names = [f"{stem}-{kind}-{_RANK[kind]}", f"{stem}-{kind}.{_RANK[kind]}"]
    return [n + gz for n in names for gz in ("", ".gz")]


def find_idx_files(directory: str | Path) -> dict[str, Path]:
    """{"train-images": path, "train-labels": ..., "t10k-images": ..., "t10k-labels": ...}."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NetError("no such directory (expected the four MNIST-format IDX files in it)",
                       str(directory))
    found, missing = {}, []
    for part in PARTS:
        paths = [directory / name for name in _candidates(part) if (directory / name).is_file()]
        if len(paths) > 1:
            raise NetError(f"{len(paths)} files for {part}: {', '.join(p.name for p in paths)}; "
                           "keep one", str(directory))
        if paths:
            found[part] = paths[0]
        else:
            missing.append(f"{_candidates(part)[0]}[.gz]")
    if missing:
        hint = " (MNIST, Fashion-MNIST and KMNIST come as these four files)" if not found else ""
        raise NetError(f"missing {', '.join(missing)}{hint}", str(directory))
    return found


def read_images_labels(images_path: str | Path, labels_path: str | Path,
                       classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images N x H x W and int64 labels N, checked against each other.

    classes: if given, every label must lie in 0..classes-1.
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise NetError(f"expected images, an N x H x W array of unsigned bytes; found a "
                       f"{' x '.join(map(str, images.shape))} array of {images.dtype}", str(images_path))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise NetError(f"expected labels, a vector of integers; found a "
                       f"{' x '.join(map(str, labels.shape))} array of {labels.dtype}", str(labels_path))
    if len(images) != len(labels):
        raise NetError(f"{len(labels)} labels for the {len(images)} images of {images_path}",
                       str(labels_path))
    labels = labels.astype(np.int64)
    if classes is not None and len(labels):
        bad = (labels < 0) | (labels >= classes)
        if bad.any():
            first = int(np.argmax(bad))
            raise NetError(f"label {labels[first]} at index {first} is outside 0..{classes - 1} "
                           f"({int(bad.sum())} such labels)", str(labels_path))
    return images, labels


def load_idx_set(directory: str | Path, classes: int | None = 10) -> IdxSet:
    """The train and t10k images and labels of an MNIST-format directory."""
    files = find_idx_files(directory)
    train = read_images_labels(files["train-images"], files["train-labels"], classes)
    test = read_images_labels(files["t10k-images"], files["t10k-labels"], classes)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise NetError(f"the train images are {'x'.join(map(str, train[0].shape[1:]))} but the "
                       f"t10k images {'x'.join(map(str, test[0].shape[1:]))}", str(directory))
    return IdxSet(train[0], train[1], test[0], test[1])
