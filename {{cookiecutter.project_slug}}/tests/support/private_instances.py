"""Private Redis and PostgreSQL servers on ports of their own, for tests whose service must fail.

The shared services are never stopped; a test that needs Redis or the database to be missing,
late or gone starts its own here and ends it by its pid.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from .workers import wait_for

#: Ports of the private servers (nothing else in the suite uses them).
REDIS_PORT = 6396
LATE_POSTGRES_PORT = 5443
#: Ports where nothing ever listens: "the service never answers".
SILENT_REDIS_PORT = 6397
SILENT_BROKER_PORT = 6398
SILENT_POSTGRES_PORT = 5449


def program(name: str, *patterns: str) -> str:
    """The path of ``name``; a skip outside CI when it is not installed, a failure in CI."""
    found = shutil.which(name) or next(
        iter(sorted(path for pattern in patterns for path in glob.glob(pattern))[::-1]), None
    )
    if found is None:
        message = f"this test starts a private {name}; install it (apt-get install ...)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user there."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PrivateRedis:
    """A redis-server on ``port``; ``start`` and ``kill`` as often as needed.

    With ``appendonly`` it keeps every acknowledged write (AOF, fsync on each) across a kill.
    """

    def __init__(self, directory: Path, port: int = REDIS_PORT, appendonly: bool = False) -> None:
        self.binary = program("redis-server")
        self.directory = directory
        self.port = port
        self.persistence = ("--appendonly", "yes", "--appendfsync", "always") if appendonly else (
            "--appendonly", "no"
        )  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert not listening(self.port), f"port {self.port} is taken"
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *self.persistence,
                *("--dir", str(self.directory), "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: listening(self.port), 10, f"the private Redis on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        """Stop answering while the port still accepts connections, as a hung node does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def private_redis(
    directory: Path, port: int = REDIS_PORT, appendonly: bool = False
) -> Iterator[PrivateRedis]:
    """A PrivateRedis (not started yet), killed at the end."""
    server = PrivateRedis(directory, port, appendonly)
    try:
        yield server
    finally:
        server.kill()


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust authentication) on ``port``."""

    def __init__(self, directory: Path, port: int = LATE_POSTGRES_PORT) -> None:
        self.bin = Path(program("initdb", "/usr/lib/postgresql/*/bin/initdb")).parent
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.started = False
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [*as_postgres_user(), *argv], check=True, capture_output=True, cwd=self.directory
        )

    def initdb(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        assert not listening(self.port), f"port {self.port} is taken"
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "log"), "-w", "start",
        )  # fmt: skip
        self.started = True

    def stop(self) -> None:
        if self.started:
            with suppress(subprocess.CalledProcessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.started = False


@contextmanager
def private_postgres(port: int = LATE_POSTGRES_PORT) -> Iterator[PrivatePostgres]:
    """A PrivatePostgres with its cluster made (not started); stopped and deleted at the end.

    Its directory is not under pytest's, which only root may enter when the tests run as root.
    """
    with tempfile.TemporaryDirectory(prefix="private-postgres-") as directory:
        server = PrivatePostgres(Path(directory), port)
        server.initdb()
        try:
            yield server
        finally:
            server.stop()


class Cut:
    """A TCP relay to a shared service on a port of its own; ``cut`` makes the service vanish.

    For a fault on a server the tests may not stop (the shared RabbitMQ): after ``cut`` every
    relayed connection is closed and new ones are refused, as if the server had died.
    """

    def __init__(self, port: int, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.sockets: list[socket.socket] = [self.listener]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with self.lock:
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
