"""Objects holding sockets are made per process: a forked child never uses its parent's."""

import os

from {{ cookiecutter.package_name }}.core.per_process import PerProcess


def test_a_forked_child_makes_its_own_object_and_forgets_the_parents() -> None:
    made: list[int] = []
    forgotten: list[int] = []

    def make() -> int:
        made.append(os.getpid())
        return os.getpid()

    shared = PerProcess(make, forgotten.append)
    parent = shared.get()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        report = f"{shared.get()} {forgotten} {shared.get() == os.getpid()}"
        os.write(write, report.encode())
        os._exit(0)
    os.close(write)
    report = os.read(read, 1000).decode()
    os.waitpid(child, 0)
    assert report == f"{child} [{parent}] True"
    assert shared.get() == parent
    assert made == [parent]
