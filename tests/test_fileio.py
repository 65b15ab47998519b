"""The shared file helpers: atomic writes and advisory locks."""

import os

import numpy as np
import pytest

from decision_transformer.fileio import Locked, atomic_path, replace_block, try_lock, write_json_atomic


def test_atomic_path_replaces_only_on_success_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.npz"
    with atomic_path(p) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path and tmp.name.startswith(".")
        np.savez(tmp, x=np.arange(3))                 # numpy keeps the name: it ends in .npz
    assert np.load(p)["x"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            np.savez(tmp, x=np.arange(5))
            raise RuntimeError("killed half-way")
    assert np.load(p)["x"].tolist() == [0, 1, 2]      # the old file stands
    assert os.listdir(tmp_path) == ["a.npz"]          # no temp left
    write_json_atomic(tmp_path / "b.json", {"k": 1})
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.json"]


def test_atomic_path_gives_files_plain_permissions(tmp_path):
    from decision_transformer.fileio import umask
    from safetensors.numpy import save_file
    p = tmp_path / "w.safetensors"
    with atomic_path(p) as tmp:
        save_file({"x": np.zeros(2, np.float32)}, str(tmp))    # safetensors creates its files 0600
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask()


def test_lock_names_its_holder_and_is_released(tmp_path):
    a = try_lock(tmp_path / ".lock", "job A")
    with pytest.raises(Locked, match=rf"pid {os.getpid()} \(job A\)"):
        try_lock(tmp_path / ".lock", "job B")
    a.close()
    try_lock(tmp_path / ".lock", "job B").close()


def test_atomic_writes_of_one_file_from_many_threads_do_not_collide(tmp_path):
    import threading
    errors = []

    def write(i):
        try:
            for _ in range(50):
                write_json_atomic(tmp_path / "same.json", {"writer": i})
        except Exception as e:              # surfaced below
            errors.append(e)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and os.listdir(tmp_path) == ["same.json"]


def test_replace_block_rewrites_only_its_block(tmp_path):
    """A command's figures inside a hand-written page: the lines between the markers are replaced,
    the rest kept byte for byte; a page without the block is left alone."""
    page = tmp_path / "README.md"
    head, tail = "# Title\n\nhand-written\n<!-- generated: odt (a comment) -->\n", "<!-- end: odt -->\nmore\n"
    page.write_text(head + "old line\nold line 2\n" + tail)
    assert replace_block(page, "odt", ["new 1", "new 2"])
    assert page.read_text() == head + "new 1\nnew 2\n" + tail
    assert replace_block(page, "odt", []) and page.read_text() == head + tail
    plain = tmp_path / "other.md"
    plain.write_text("<!-- generated: odtx -->\nx\n<!-- end: odtx -->\n")     # another block's name
    assert not replace_block(plain, "odt", ["y"]) and plain.read_text().endswith("x\n<!-- end: odtx -->\n")
    assert not replace_block(tmp_path / "README.md", "sweep", ["y"])
