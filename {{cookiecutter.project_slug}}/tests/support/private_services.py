"""Private Redis instances for tests that need a dependency to fail; the shared ones stay up.

Each instance runs on its own port and directory, is ended when the test ends, and can be killed,
frozen and restarted on the same append-only file, as a crashed or failed-over server would be.
"""

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from .workers import wait_for


class PrivateRedis:
    """A ``redis-server`` on ``port`` with its data (AOF, fsync on every write) in ``directory``."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def answers() -> bool:
            with contextlib.suppress(redis.RedisError), self.client() as client:
                return bool(client.ping())
            return False

        wait_for(answers, 20, f"a private Redis on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """Stop the server answering while its port still accepts connections (a hung node)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def private_redis(port: int, directory: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(port, directory)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        server.kill()
