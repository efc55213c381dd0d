"""The IDX reader on hand-made files, gzipped and raw, and its refusal of broken ones.

    pytest tests/test_idx.py
"""
import gzip
import struct

import numpy as np
import pytest

from netdsl import NetError
from netdsl.datasets import idx


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written from LeCun's description: 0, 0, type code, rank, big-endian dims, data."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(big).tobytes()


def write(path, array, code=0x08, gz=False):
    data = idx_bytes(array, code)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_images_raw_and_gzipped(tmp_path, gz):
    array = idx.read_idx(write(tmp_path / "x", IMAGES, gz=gz))
    assert array.dtype == np.uint8 and np.array_equal(array, IMAGES)


@pytest.mark.parametrize("code, values", [(0x0B, [-300, 2, 30000]), (0x0C, [-70000, 0, 9]),
                                          (0x0D, [0.5, -2.25, 1e3]), (0x0E, [1e-300, 3.0, -1.0]),
                                          (0x09, [-128, 5, 127])])
def test_reads_every_type_big_endian(tmp_path, code, values):
    array = idx.read_idx(write(tmp_path / "x", np.array(values), code))
    assert array.tolist() == values and array.dtype.isnative


def test_gzip_is_told_by_content_not_name(tmp_path):
    plain = write(tmp_path / "labels.gz", np.array([1, 2, 3]))           # not gzipped
    packed = write(tmp_path / "labels-idx1-ubyte", np.array([1, 2, 3]), gz=True)
    assert idx.read_idx(plain).tolist() == idx.read_idx(packed).tolist() == [1, 2, 3]


def test_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(IMAGES, 0x08)[:-1])
    with pytest.raises(NetError, match="truncated: a 3 x 4 x 5 array of uint8 needs 60 bytes of data, "
                                       "the file holds 59") as err:
        idx.read_idx(path)
    assert err.value.path == str(path)


def test_refuses_a_truncated_header_and_a_truncated_gzip(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(IMAGES, 0x08)[:9])
    with pytest.raises(NetError, match="promises 3 dimensions but the file ends after 9 bytes"):
        idx.read_idx(short)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(idx_bytes(IMAGES, 0x08))[:-10])
    with pytest.raises(NetError, match="gzip stream is cut short"):
        idx.read_idx(cut)


def test_refuses_bad_magic_unknown_type_and_trailing_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x89PNG" + bytes(20))
    with pytest.raises(NetError, match="bad magic number 0x89504e47"):
        idx.read_idx(path)
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(NetError, match="unknown IDX type code 0x0A"):
        idx.read_idx(path)
    path.write_bytes(idx_bytes(IMAGES, 0x08) + b"\0\0")
    with pytest.raises(NetError, match="2 bytes after the 3 x 4 x 5 array"):
        idx.read_idx(path)


def test_images_and_labels_must_agree(tmp_path):
    images = write(tmp_path / "images", IMAGES)
    with pytest.raises(NetError, match="2 labels for the 3 images") as err:
        idx.read_images_labels(images, write(tmp_path / "two", np.array([0, 1])))
    assert err.value.path == str(tmp_path / "two")
    with pytest.raises(NetError, match=r"label 10 at index 2 is outside 0\.\.9 \(1 such labels\)"):
        idx.read_images_labels(images, write(tmp_path / "ten", np.array([0, 9, 10])), classes=10)
    with pytest.raises(NetError, match="expected images, an N x H x W array"):
        idx.read_images_labels(write(tmp_path / "flat", np.array([1, 2, 3])), images)
    _, labels = idx.read_images_labels(images, write(tmp_path / "ok", np.array([0, 9, 10])))
    assert labels.dtype == np.int64 and labels.tolist() == [0, 9, 10]


def make_set(folder, gz):
    suffix = ".gz" if gz else ""
    write(folder / f"train-images-idx3-ubyte{suffix}", np.zeros((4, 28, 28)), gz=gz)
    write(folder / f"train-labels-idx1-ubyte{suffix}", np.array([0, 1, 2, 3]), gz=gz)
    write(folder / f"t10k-images-idx3-ubyte{suffix}", np.ones((2, 28, 28)), gz=gz)
    write(folder / f"t10k-labels-idx1-ubyte{suffix}", np.array([4, 5]), gz=gz)


@pytest.mark.parametrize("gz", [False, True])
def test_finds_and_loads_the_four_files(tmp_path, gz):
    make_set(tmp_path, gz)
    assert sorted(idx.find_idx_files(tmp_path)) == sorted(idx.PARTS)
    data = idx.load_idx_set(tmp_path)
    assert data.train_images.shape == (4, 28, 28) and data.test_labels.tolist() == [4, 5]


def test_names_the_missing_file(tmp_path):
    make_set(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(NetError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        idx.find_idx_files(tmp_path)
    with pytest.raises(NetError, match="no such directory"):
        idx.find_idx_files(tmp_path / "nowhere")


def test_refuses_two_files_for_one_part(tmp_path):
    make_set(tmp_path, gz=True)
    make_set(tmp_path, gz=False)
    with pytest.raises(NetError, match="2 files for train-images"):
        idx.find_idx_files(tmp_path)
