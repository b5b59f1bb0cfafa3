"""Private Redis and RabbitMQ instances for fault tests: ports of their own, always ended.

The shared services are never stopped or flushed. A test that needs a broker or Redis to crash,
restart or lose its data starts one here, on a port it names, and the context manager ends it
(and removes its files) whatever happens. Every wait has a deadline; nothing sleeps blindly.

    with private_redis(6390, appendonly=True) as broker:
        broker.kill()
        broker.restart()

    with private_rabbitmq("faults", 5690, 25690) as node:
        node.stop_app()
        node.start_app()
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import amqp
import pytest
import redis

from .workers import wait_for

#: Debian installs the real scripts here; /usr/sbin has wrappers that switch to the rabbitmq user.
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``port``."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _refuse_taken_port(port: int) -> None:
    if port_open(port):
        raise RuntimeError(f"port {port} is already in use: refusing to touch another service")


def _require(program: str, package: str) -> str:
    """The path of ``program``; skip the test when it is not installed (it needs the server)."""
    found = shutil.which(program)
    if found is None:
        pytest.skip(f"{program} is not installed (Debian/Ubuntu package {package})")
    return found


def _end(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGKILL the process's group (it was started in a session of its own) and reap it."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


@dataclass
class PrivateRedis:
    """One redis-server on ``port`` with its data in ``dir``; survives ``kill`` + ``restart``."""

    port: int
    dir: Path
    appendonly: bool = True
    appendfsync: str = "always"
    #: RDB snapshot rule (redis.conf's ``save``); empty: no snapshots.
    save: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **options)  # type: ignore[arg-type]

    def ready(self) -> bool:
        """Answers PING (it refuses while it replays its AOF)."""
        try:
            with self.client(socket_connect_timeout=0.5, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 30) -> float:
        """Start the server on its directory; return the seconds until it answered PING."""
        _refuse_taken_port(self.port)
        began = time.monotonic()
        command = [
            _require("redis-server", "redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", self.save,
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, start_new_session=True)

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")
                raise AssertionError(f"redis-server on port {self.port} exited:\n{log}")
            return self.ready()

        wait_for(up, timeout, f"the private Redis on port {self.port} to answer")
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: it writes nothing more."""
        _end(self.process)
        self.process = None
        wait_for(lambda: not port_open(self.port), 10, f"port {self.port} to close")

    def restart(self, timeout: float = 30) -> float:
        """Start again on the same directory (replaying the AOF); seconds until it answered."""
        if self.process is not None:
            self.kill()
        return self.start(timeout)

    def stop(self) -> None:
        self.kill()


@contextlib.contextmanager
def private_redis(
    port: int,
    appendonly: bool = True,
    appendfsync: str = "always",
    save: str = "",
    dir: Path | None = None,
) -> Iterator[PrivateRedis]:
    """A redis-server on ``port``; killed, and its files removed unless ``dir`` was given."""
    own = dir is None
    directory = Path(tempfile.mkdtemp(prefix=f"redis-{port}-")) if own else Path(dir)  # type: ignore[arg-type]
    server = PrivateRedis(port, directory, appendonly, appendfsync, save)
    try:
        server.start()
        yield server
    finally:
        _end(server.process)
        if own:
            shutil.rmtree(directory, ignore_errors=True)


def _rabbitmq_script(name: str) -> str:
    """The real script (not Debian's wrapper, which switches user and ignores HOME)."""
    script = RABBITMQ_SCRIPTS / name
    return str(script) if script.exists() else _require(name, "rabbitmq-server")


@dataclass
class PrivateRabbitMQ:
    """One RabbitMQ node ``name@localhost`` on ``port``, with its own config, data and cookie."""

    name: str
    port: int
    dist_port: int
    dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def environment(self) -> dict[str, str]:
        base = self.dir
        return {
            **os.environ,
            # Its own cookie (HOME) and config: nothing read from /etc/rabbitmq or the shared node.
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
        }

    def prepare(self) -> None:
        cookie = self.dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "plugins").write_text("[].\n")

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n NODE ARGS``; raise with its output if it fails."""
        done = subprocess.run(
            [_rabbitmq_script("rabbitmqctl"), "-n", self.node, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def accepting(self) -> bool:
        """Accepts an AMQP connection (the port opens only once the app runs)."""
        try:
            connection = amqp.Connection(f"127.0.0.1:{self.port}", connect_timeout=1)
            connection.connect()
        except (OSError, amqp.exceptions.AMQPError):
            return False
        with contextlib.suppress(Exception):
            connection.close()
        return True

    def start(self, timeout: float = 90) -> float:
        """Start the node (the data of an earlier run is kept); seconds until it took AMQP."""
        _refuse_taken_port(self.port)
        _refuse_taken_port(self.dist_port)
        self.prepare()
        began = time.monotonic()
        with (self.dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [_rabbitmq_script("rabbitmq-server")],
                env=self.environment(),
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                log = (self.dir / "server.log").read_text(errors="replace")
                raise AssertionError(f"RabbitMQ node {self.node} exited:\n{log[-3000:]}")
            return self.accepting()

        wait_for(up, timeout, f"RabbitMQ node {self.node} to accept connections", 0.2)
        return time.monotonic() - began

    def stop_app(self, timeout: float = 60) -> float:
        """Stop the RabbitMQ application (the Erlang node stays); seconds until the port closed."""
        began = time.monotonic()
        self.ctl("stop_app", timeout=timeout)
        wait_for(lambda: not port_open(self.port), timeout, f"{self.node} to close its port")
        return time.monotonic() - began

    def start_app(self, timeout: float = 60) -> float:
        """Start the application again; seconds until it accepted an AMQP connection."""
        began = time.monotonic()
        self.ctl("start_app", timeout=timeout)
        wait_for(self.accepting, timeout, f"{self.node} to accept connections", 0.1)
        return time.monotonic() - began

    def stop(self, timeout: float = 60) -> None:
        """Stop the whole node cleanly (messages of durable queues are kept on disk)."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        _end(self.process)
        self.process = None

    def restart(self, timeout: float = 90) -> float:
        """A full stop and start of the node; seconds from the start to the first connection."""
        self.stop()
        wait_for(lambda: not port_open(self.dist_port), 30, f"{self.node} to end")
        return self.start(timeout)


@contextlib.contextmanager
def private_rabbitmq(
    name: str,
    port: int,
    dist_port: int,
    dir: Path | None = None,
) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node ``name@localhost`` on ``port``; stopped, and its files removed at the end."""
    own = dir is None
    directory = Path(tempfile.mkdtemp(prefix=f"rabbitmq-{name}-")) if own else Path(dir)  # type: ignore[arg-type]
    node = PrivateRabbitMQ(name, port, dist_port, directory)
    try:
        node.start()
        yield node
    finally:
        node.stop(timeout=30)
        if own:
            shutil.rmtree(directory, ignore_errors=True)
