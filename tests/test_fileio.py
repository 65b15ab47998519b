"""The shared file helpers: atomic writes and advisory locks."""

import os

import numpy as np
import pytest

from decision_transformer.fileio import Locked, atomic_path, try_lock, write_json_atomic


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
