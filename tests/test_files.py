import os
import stat

import pytest

from tomolearn.files import atomic_write_bytes


def test_atomic_write_has_normal_permissions_and_keeps_existing(tmp_path):
    umask = os.umask(0o022)
    try:
        path = tmp_path / "a.bin"
        atomic_write_bytes(path, b"one")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes() == b"one"
        os.chmod(path, 0o600)
        atomic_write_bytes(path, b"two")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"two"
    finally:
        os.umask(umask)


def test_atomic_write_failure_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]
