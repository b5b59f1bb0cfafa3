"""A stand-in for the `docker` commands a rendered project's tests/test_image.py runs.

No Docker engine runs on these machines. Images are built and stored by buildah (overlay driver);
containers run under crun, the OCI runtime, from a spec written the way Docker writes one:
the image's environment and working directory, the options' user, environment, read-only
root, tmpfs mounts and init (tini, which Docker's --init also is, bound in at /sbin/docker-init),
Docker's default capabilities, its /dev, /dev/shm and /proc, and the host's network. crun runs in
a mount namespace that hides the host's cgroup file systems (crun refuses this sandbox's hybrid
cgroup layout) with its cgroup manager off: no CPU or memory limits apply, as none are asked.

The commands and options understood are the ones that test runs; anything else is refused:
  run (--rm | --detach) [--name N] [--init] --read-only [--tmpfs PATH] [--user UID:GID]
      [--network host] [--stop-timeout S] [--env NAME=VALUE]... IMAGE [COMMAND...]
  exec NAME COMMAND...  |  stop [--time S] NAME  |  wait NAME  |  logs NAME  |  rm [--force] NAME
Containers of one image share one copy of its root file system, hence --read-only always.
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Everything the image tests keep on this machine: the containers storage with the cached
#: base images, crun's state, one directory per container.
STORE = Path(os.environ.get("IMAGE_TESTS_STORE", "/var/tmp/celery-ecs-worker-template"))
BUILDAH = [
    "buildah",
    "--root",
    str(STORE / "storage"),
    "--runroot",
    str(STORE / "run"),
    # overlay, not vfs: vfs copies the whole root file system for every stage and container,
    # which made the tests 2.5 times slower (README.md, "Test the template").
    "--storage-driver",
    "overlay",
]
CONTAINERS = STORE / "containers"
CRUN = ["crun", "--root", str(STORE / "crun"), "--cgroup-manager=disabled"]
#: crun refuses a hybrid cgroup v1/v2 host even with its cgroup manager off: it runs where a
#: private, empty /sys/fs/cgroup hides them.
HIDE_CGROUPS = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -t tmpfs no-cgroups /sys/fs/cgroup && exec "$@"',
    "sh",
]
TINI = shutil.which("tini-static") or "/usr/bin/tini-static"
#: Docker's default capability set (moby's oci/caps/defaults.go); a non-root user holds none of
#: them effectively, as under Docker.
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
#: Docker's tmpfs options for --tmpfs.
TMPFS_OPTIONS = ["nosuid", "nodev", "noexec", "mode=1777"]


class Refused(Exception):
    """A command or option this stand-in does not emulate."""


def buildah(*args: str) -> str:
    return subprocess.run(
        [*BUILDAH, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    STORE.mkdir(parents=True, exist_ok=True)
    with (STORE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def image_config(image: str) -> dict[str, Any]:
    inspected = json.loads(buildah("inspect", "--type", "image", image))
    return {"id": inspected["FromImageID"], **inspected["OCIv1"]["config"]}


def shared_root(image_id: str) -> str:
    """The mounted root file system shared by this image's containers (made once)."""
    name = f"stand-in-{image_id[:12]}"
    with locked("roots"):
        known = subprocess.run(
            [*BUILDAH, "inspect", "--type", "container", name], capture_output=True, check=False
        )
        if known.returncode:
            buildah("from", "--quiet", "--pull=never", "--name", name, image_id)
        return buildah("mount", name)


def remove_roots(image_id: str) -> None:
    """Unmount and remove the shared root of an image (when its tests are done)."""
    name = f"stand-in-{image_id[:12]}"
    subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False)


def parse_run(args: list[str]) -> tuple[dict[str, Any], str, list[str]]:
    """``docker run``'s options (by long name, without dashes), image and command."""
    flags = {"--rm": "rm", "--detach": "detach", "-d": "detach", "--init": "init"}
    flags["--read-only"] = "read-only"
    valued = {"--name", "--user", "--network", "--stop-timeout"}
    lists = {"--env": "env", "-e": "env", "--tmpfs": "tmpfs"}
    options: dict[str, Any] = {"env": [], "tmpfs": []}
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in flags:
            options[flags[option]] = True
        elif option in valued:
            options[option[2:]] = args.pop(0)
        elif option in lists:
            options[lists[option]].append(args.pop(0))
        else:
            raise Refused(f"docker run {option}: not emulated")
    if not args:
        raise Refused("docker run: no image")
    return options, args[0], args[1:]


def spec(options: dict[str, Any], config: dict[str, Any], root: str, command: list[str]) -> dict:
    if not options.get("read-only"):
        raise Refused("docker run without --read-only: containers share one root file system")
    if options.get("network", "host") != "host":
        raise Refused(f"docker run --network {options['network']}: only host is emulated")
    user = options.get("user") or config.get("User") or "0:0"
    uid, _, gid = user.partition(":")
    if not (uid.isdigit() and (gid or "0").isdigit()):
        raise Refused(f"--user {user}: only a numeric uid[:gid] is emulated")
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    env["HOSTNAME"] = socket.gethostname()
    env.update(item.split("=", 1) for item in options["env"])
    args = (config.get("Entrypoint") or []) + (command or config.get("Cmd") or [])
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        # sysfs cannot be mounted without a network namespace of one's own: the host's, read-only.
        {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "ro"]},
    ]
    mounts += [
        {"destination": path, "type": "tmpfs", "source": "tmpfs", "options": TMPFS_OPTIONS}
        for path in options["tmpfs"]
    ]
    # Docker gives a host-network container the host's name resolution files.
    mounts += [
        {"destination": path, "type": "bind", "source": path, "options": ["bind", "ro"]}
        for path in ("/etc/hosts", "/etc/resolv.conf")
    ]
    if options.get("init"):
        mounts.append(
            {
                "destination": "/sbin/docker-init",
                "type": "bind",
                "source": TINI,
                "options": ["bind", "ro"],
            }
        )
        args = ["/sbin/docker-init", "--", *args]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": int(uid), "gid": int(gid or 0)},
            "args": args,
            "env": [f"{name}={value}" for name, value in env.items()],
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {"bounding": CAPABILITIES},
        },
        "root": {"path": root, "readonly": True},
        "hostname": socket.gethostname(),
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"],
        },
    }


def bundle(name: str) -> Path:
    return CONTAINERS / name


def exit_code(name: str) -> int | None:
    path = bundle(name) / "exit-code"
    return int(path.read_text()) if path.exists() and path.read_text() else None


def crun_run(name: str, **popen: Any) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [*HIDE_CGROUPS, *CRUN, "run", "--bundle", str(bundle(name)), name], **popen
    )


def run(args: list[str]) -> int:
    options, image, command = parse_run(args)
    if options.get("rm") == options.get("detach"):
        raise Refused("docker run: give exactly one of --rm and --detach")
    config = image_config(image)
    name = options.get("name") or f"stand-in-{uuid.uuid4().hex[:12]}"
    directory = bundle(name)
    directory.mkdir(parents=True)
    definition = spec(options, config, shared_root(config["id"]), command)
    (directory / "config.json").write_text(json.dumps(definition))
    (directory / "stop-timeout").write_text(options.get("stop-timeout", "10"))
    if options.get("rm"):
        try:
            return crun_run(name).wait()
        finally:
            shutil.rmtree(directory)
    log = (directory / "log").open("wb")
    supervisor = [sys.executable, __file__, "supervise", name]
    subprocess.Popen(supervisor, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not running(name) and exit_code(name) is None:
        if time.monotonic() > deadline:
            raise Refused(f"container {name} did not start within 30 s")
        time.sleep(0.05)
    print(name)
    return 0


def supervise(name: str) -> int:
    """Run the container in the foreground and record its exit code (as Docker's daemon does)."""
    code = crun_run(name).wait()
    (bundle(name) / "exit-code").write_text(str(code))
    return 0


def running(name: str) -> bool:
    state = subprocess.run([*CRUN, "state", name], capture_output=True, text=True, check=False)
    return state.returncode == 0 and json.loads(state.stdout)["status"] == "running"


def exec_(args: list[str]) -> int:
    name, *command = args
    if not running(name):
        print(f"Error response from daemon: container {name} is not running", file=sys.stderr)
        return 1
    process = json.loads((bundle(name) / "config.json").read_text())["process"]
    user = process["user"]
    options = ["--cwd", process["cwd"], "--user", f"{user['uid']}:{user['gid']}"]
    for item in process["env"]:
        options += ["--env", item]
    return subprocess.run([*HIDE_CGROUPS, *CRUN, "exec", *options, name, *command]).returncode


def wait_exit(name: str, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while (code := exit_code(name)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return code


def stop(args: list[str]) -> int:
    """SIGTERM to the container's PID 1; SIGKILL to all of it once the timeout has passed."""
    timeout = None
    if args[0] in ("--time", "-t"):
        timeout, args = float(args[1]), args[2:]
    (name,) = args
    if timeout is None:
        timeout = float((bundle(name) / "stop-timeout").read_text())
    if running(name):
        subprocess.run([*CRUN, "kill", name, "TERM"], check=False)
        if wait_exit(name, timeout) is None:
            subprocess.run([*CRUN, "kill", "--all", name, "KILL"], check=False)
            wait_exit(name, 30)
    print(name)
    return 0


def wait(args: list[str]) -> int:
    (name,) = args
    print(wait_exit(name, float("inf")))
    return 0


def logs(args: list[str]) -> int:
    (name,) = args
    sys.stdout.write((bundle(name) / "log").read_text(errors="replace"))
    return 0


def rm(args: list[str]) -> int:
    *options, name = args
    if running(name):
        if "--force" not in options and "-f" not in options:
            print(f"Error: container {name} is running", file=sys.stderr)
            return 1
        subprocess.run([*CRUN, "kill", "--all", name, "KILL"], check=False)
        wait_exit(name, 30)
    subprocess.run([*CRUN, "delete", "--force", name], capture_output=True, check=False)
    shutil.rmtree(bundle(name), ignore_errors=True)
    return 0


COMMANDS = {
    "run": run,
    "exec": exec_,
    "stop": stop,
    "wait": wait,
    "logs": logs,
    "rm": rm,
    "supervise": lambda args: supervise(*args),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"docker stand-in: {' '.join(argv[:1])!r} is not emulated", file=sys.stderr)
        return 125
    try:
        return COMMANDS[argv[0]](argv[1:])
    except Refused as refused:
        print(f"docker stand-in: {refused}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
