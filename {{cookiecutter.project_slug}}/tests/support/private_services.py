"""Private Redis, RabbitMQ and PostgreSQL servers for fault tests: ports of their own, always ended.

The shared services are never stopped or flushed. A test that needs a broker, Redis or the
database to crash, restart, freeze or come late starts one here, and the context manager ends it
(and removes its files) whatever happens. Every wait has a deadline. Each server takes a port
reserved at run time (``reserved_port``), so several suites can run at once on one machine.

    with private_redis(appendonly=True) as broker:
        broker.kill()
        broker.restart()

    with private_rabbitmq("faults") as node:
        node.stop_app()
        node.start_app()

    with dead_port() as port:
        ...  # connections to 127.0.0.1:port are refused until the block ends
"""

import contextlib
import errno
import glob
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
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
#: Ports of private servers: below the kernel's ephemeral range (32768-60999 on Linux), so no
#: port-0 bind or outgoing connection takes one while its server is down for a test, and clear
#: of the shared services' ports (RabbitMQ's 25672 among them).
SERVER_PORTS = range(21000, 25000)
#: Ports this process was given: never again, as kombu's connection pools are keyed by URL.
_given: set[int] = set()


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


def _unbound(port: int) -> bool:
    """Nothing holds ``port`` on any address: no listener, no connection's end."""
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A free port of SERVER_PORTS that no other test process on this machine takes until the end.

    The reservation is an abstract Unix socket named after the port (Linux): seen by every
    process of the network namespace, as the port is, and released however the process ends.
    """
    for port in random.sample(SERVER_PORTS, len(SERVER_PORTS)):
        if port in _given:
            continue
        claim = socket.socket(socket.AF_UNIX)
        try:
            claim.bind(f"\0private-service-port-{port}")
        except OSError as error:
            claim.close()
            if error.errno != errno.EADDRINUSE:
                raise
            continue
        with claim:
            if _unbound(port):
                _given.add(port)
                yield port
                return
    raise RuntimeError(f"no free port left in {SERVER_PORTS}")


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A port where connections are refused until the block ends: bound here, never listened on,
    so nothing else can listen there meanwhile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def program(name: str, package: str, *patterns: str) -> str:
    """The path of ``name``; a skip outside CI when it is not installed, a failure in CI."""
    found = shutil.which(name) or next(
        iter(sorted(path for pattern in patterns for path in glob.glob(pattern))[::-1]), None
    )
    if found is None:
        message = f"this test starts a private {name}; install it (Debian package {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
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
            program("redis-server", "redis-server"),
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

    def freeze(self) -> None:
        """Stop answering while the port still accepts connections, as a hung node does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def private_redis(
    *,
    appendonly: bool = True,
    appendfsync: str = "always",
    save: str = "",
    dir: Path | None = None,
    start: bool = True,
) -> Iterator[PrivateRedis]:
    """A redis-server on a reserved port (``start=False``: not yet started); killed, and its
    files removed unless ``dir`` was given."""
    own = dir is None
    with reserved_port() as port:
        directory = Path(tempfile.mkdtemp(prefix=f"redis-{port}-")) if own else Path(dir)  # type: ignore[arg-type]
        server = PrivateRedis(port, directory, appendonly, appendfsync, save)
        try:
            if start:
                server.start()
            yield server
        finally:
            _end(server.process)
            if own:
                shutil.rmtree(directory, ignore_errors=True)


def _rabbitmq_script(name: str) -> str:
    """The real script (not Debian's wrapper, which switches user and ignores HOME)."""
    script = RABBITMQ_SCRIPTS / name
    return str(script) if script.exists() else program(name, "rabbitmq-server")


@dataclass
class PrivateRabbitMQ:
    """One RabbitMQ node ``name@localhost`` on ``port`` (AMQP) and ``dist_port`` (Erlang
    distribution), with its own config, data and cookie."""

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
            # rabbitmqctl's own Erlang node: a port the kernel picks, not 35672-35682, which
            # every rabbitmqctl on the machine shares.
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
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
def private_rabbitmq(name: str, dir: Path | None = None) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node ``name-<random>@localhost`` (epmd takes one node of a name per machine)
    on two reserved ports; stopped, and its files removed at the end."""
    own = dir is None
    with reserved_port() as port, reserved_port() as dist_port:
        unique = f"{name}-{secrets.token_hex(4)}"
        directory = Path(tempfile.mkdtemp(prefix=f"rabbitmq-{unique}-")) if own else Path(dir)  # type: ignore[arg-type]
        node = PrivateRabbitMQ(unique, port, dist_port, directory)
        try:
            node.start()
            yield node
        finally:
            node.stop(timeout=30)
            if own:
                shutil.rmtree(directory, ignore_errors=True)


def as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user there."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust authentication) on ``port``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.bin = Path(program("initdb", "postgresql", "/usr/lib/postgresql/*/bin/initdb")).parent
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
        _refuse_taken_port(self.port)
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "log"), "-w", "start",
        )  # fmt: skip
        self.started = True

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.started = False


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PrivatePostgres on a reserved port with its cluster made (not started); stopped and
    deleted at the end.

    Its directory is not under pytest's, which only root may enter when the tests run as root.
    """
    with (
        reserved_port() as port,
        tempfile.TemporaryDirectory(prefix="private-postgres-") as directory,
    ):
        server = PrivatePostgres(Path(directory), port)
        server.initdb()
        try:
            yield server
        finally:
            server.stop()


class Cut:
    """A TCP relay on ``port`` (a ``reserved_port``) to a shared service; ``cut`` makes the
    service vanish.

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
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
