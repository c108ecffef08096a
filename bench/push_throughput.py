"""Push throughput, CPU and memory: Hoist's CLI against curl and the oras-py SDK.

One run starts a private `docker-registry` (distribution 2.x) on a free loopback port, then
pushes one random file (default 2 GiB) with each client, each in its own subprocess so that
`os.wait4` gives that client's own CPU time and peak RSS:

- `sha256 (hashlib)`: the floor for any client, which must hash every byte: hashlib alone in a
  subprocess, 1 MiB reads. It also yields the digest curl needs.
- `curl -T`: POST for a session, then one `PUT ?digest=` streaming the file: the registry's own
  ingest ceiling (the digest is computed beforehand and not counted in curl's time).
- `hoist`: `python -m hoist.core push` at its default chunk size and at each `--chunk-sizes` value.
- `oras-py`: `Registry.push(..., do_chunked=True)` and the monolithic `push` (which reads the
  whole file into memory). Its time includes its own hashing pass (`oras.oci.NewLayer`).

The registry's storage is emptied before every push and every push goes to a repository of its
own, so none takes a "blob already exists" shortcut. Each push is verified (HEAD the blob by
digest: 200, right size). Every measurement is repeated `--repeat` times, in a rotated order
with the file warm in the page cache, and the median is reported.

    .venv/bin/python bench/push_throughput.py [--size 2GiB] [--chunk-sizes 16MiB,64MiB]
                                              [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hoist.core.transfer.upload import DEFAULT_CHUNK  # noqa: E402
from hoist.core.units import GiB, MiB, format_size, parse_size  # noqa: E402

OUT_DIR = ROOT / "bench" / "out"
PYTHON = sys.executable
MB = 1_000_000
TICK = os.sysconf("SC_CLK_TCK")

# Hoist's targets (checked at the end).
TARGET_THROUGHPUT = 0.95  # × curl, at the default chunk size
TARGET_CPU = 1.3  # × hashlib alone
TARGET_RSS_MB = 100.0  # at every chunk size
#: A run during which the rest of the machine used more than this many cores is disturbed.
MAX_OTHERS_CORES = 0.2

HASH_SCRIPT = """
import hashlib, sys
h = hashlib.sha256()
buf = bytearray(1 << 20)
view = memoryview(buf)
with open(sys.argv[1], "rb", buffering=0) as f:
    while n := f.readinto(buf):
        h.update(view[:n])
print("sha256:" + h.hexdigest())
"""

ORAS_SCRIPT = """
import sys
import oras.client
host, target, path, chunked, chunk = sys.argv[1:6]
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(
    target=target, files=[path], disable_path_validation=True,
    do_chunked=chunked == "1", chunk_size=int(chunk), quiet=True,
)
print(response.status_code)
sys.exit(0 if response.status_code in (200, 201) else 1)
"""


# -- measuring one subprocess ------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    cpu: float  # user + system of the child
    maxrss_mb: float
    registry_cpu: float = 0.0
    other_cpu: float = 0.0  # the rest of the machine meanwhile (other processes, steal)
    busy_start: bool = False  # the machine was still busy when the run had to start
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""


# The launcher: a bare interpreter (`python -S`, about 8 MB) that spawns the client and reaps it
# with os.wait4. Linux carries the spawning process's peak RSS into the child's ru_maxrss at
# exec, so spawning straight from this (much bigger) process would inflate every client's figure.
LAUNCHER = """
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
with open(result, "w") as f:
    f.write(f"{seconds} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} "
            f"{os.waitstatus_to_exitcode(status)}")
"""


_compiled = False


def bytecode_env(env: dict[str, str] | None) -> dict[str, str]:
    """The client's environment with Python's bytecode cache on, Hoist's modules compiled once.

    An installed Hoist runs from bytecode (pip compiles a wheel's modules, PyInstaller ships
    them compiled). A shell with PYTHONDONTWRITEBYTECODE set (this machine's) would have every
    run compile Hoist's ~90 modules from source instead: 0.08-0.1 s of CPU and wall a start
    that no user pays. The `.pyc` files go to `__pycache__/`, which git ignores.
    """
    global _compiled
    child = dict(os.environ if env is None else env)
    child.pop("PYTHONDONTWRITEBYTECODE", None)
    if not _compiled:
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "core")], env=child,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        _compiled = True
    return child


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    registry: Registry | None = None,
) -> Sample:
    """Run `cmd` (through the launcher, which waits for it with os.wait4): its wall time from
    spawn to exit, and its own CPU time and peak RSS from the rusage. Python runs from
    bytecode, as installed (see bytecode_env)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", prefix="hoist-bench-rusage-") as result,
    ):
        reg0 = registry.cpu_seconds() if registry else 0.0
        busy0 = machine_busy()
        proc = subprocess.run(
            [PYTHON, "-S", "-c", LAUNCHER, result.name, *cmd],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=bytecode_env(env),
            cwd=cwd,
        )
        reg1 = registry.cpu_seconds() if registry else 0.0
        busy = machine_busy() - busy0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        fields = result.read().split()
        if proc.returncode or len(fields) != 4:
            raise RuntimeError(f"the launcher failed for {cmd[:3]}: {stderr[-2000:]}")
        cpu = float(fields[1])
        return Sample(
            seconds=float(fields[0]),
            cpu=cpu,
            maxrss_mb=int(fields[2]) * 1024 / MB,  # Linux: KiB
            registry_cpu=reg1 - reg0,
            other_cpu=max(0.0, busy - cpu - (reg1 - reg0)),
            returncode=int(fields[3]),
            stdout=stdout,
            stderr=stderr,
        )


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs, steal included)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICK


def wait_quiet(max_wait: float, cores: float = 0.3) -> bool:
    """Wait (at most `max_wait` s) for a second in which the machine is nearly idle: others'
    work (tests, builds) on a 2-core machine skews both the client and the registry."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy()
        time.sleep(1.0)
        if machine_busy() - b0 < cores:
            return True
        if time.monotonic() >= deadline:
            return False


# -- the registry ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """A private distribution registry: its own storage, a free loopback port, log level warn."""

    def __init__(self, binary: str, storage_parent: Path) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="hoist-bench-registry-", dir=storage_parent))
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.storage.mkdir()
        config = self.dir / "config.yml"
        # No blob descriptor cache: wiping the storage between pushes leaves nothing behind.
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.log = open(self.dir / "registry.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "serve", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(self.dir / 'registry.log').read_text()}")
            try:
                status, _, _ = self.request("GET", "/v2/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("registry did not come up in 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wipe(self) -> None:
        """Empty the storage (the registry keeps no cache: see the config)."""
        for child in self.storage.iterdir():
            shutil.rmtree(child, ignore_errors=True)
        if not str(self.storage).startswith("/dev/shm"):
            os.sync()  # don't let the last run's writeback land in the next run

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime

    def request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
            resp = conn.getresponse()
            body = resp.read() if method != "HEAD" else b""
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def blob_size(self, repo: str, digest: str) -> int | None:
        status, headers, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return int(headers.get("content-length", "-1")) if status == 200 else None

    def start_upload(self, repo: str) -> str:
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"POST upload: {status} {body[:200]!r}")
        return urllib.parse.urljoin(f"http://{self.host}/", headers["location"])


# -- the clients -------------------------------------------------------------------------------


@dataclass
class Client:
    key: str  # for the table
    kind: str  # hash, curl, hoist, oras
    chunk: int = 0  # hoist: 0 = default; oras: chunk size when chunked
    chunked: bool = True
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in self.samples))


def run_client(
    client: Client,
    registry: Registry,
    path: Path,
    size: int,
    digest: str,
    round_no: int,
    env: dict[str, str],
    quiet_wait: float,
    retries: int,
) -> Sample:
    """One measurement: on a machine others are using, run again (up to `retries` times) and
    keep the run the rest of the machine disturbed least."""
    repo = (
        f"bench/{client.key.replace(' ', '-').replace('(', '').replace(')', '').lower()}"
        f"-r{round_no}"
    )
    repo = "".join(c for c in repo if c.isalnum() or c in "/-.")
    best: Sample | None = None
    for attempt in range(retries + 1):
        registry.wipe()
        quiet = wait_quiet(quiet_wait) if quiet_wait > 0 else True
        sample = run_push(client, registry, path, size, digest, f"{repo}-{attempt}", env)
        sample.busy_start = not quiet
        if best is None or sample.other_cpu < best.other_cpu:
            best = sample
        if sample.other_cpu <= MAX_OTHERS_CORES * sample.seconds:
            break
        print(
            f"  {client.key}: others used {sample.other_cpu:.1f} CPU s meanwhile: "
            f"{'running it again' if attempt < retries else 'keeping the quietest run'}",
            file=sys.stderr,
        )
    assert best is not None
    return best


def run_push(
    client: Client,
    registry: Registry,
    path: Path,
    size: int,
    digest: str,
    repo: str,
    env: dict[str, str],
) -> Sample:
    if client.kind == "hash":
        sample = measure([PYTHON, "-c", HASH_SCRIPT, str(path)], env=env)
        if sample.returncode or sample.stdout.strip() != digest:
            raise RuntimeError(f"hash run failed: {sample.stderr[-2000:]}")
        return sample
    if client.kind == "curl":
        location = registry.start_upload(repo)
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={digest}"
        cmd = [
            "curl",
            "-sS",
            "-g",
            "-f",
            "-X",
            "PUT",
            "-T",
            str(path),
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ]
        sample = measure(cmd, env=env, registry=registry)
    elif client.kind == "hoist":
        cmd = [
            PYTHON,
            "-m",
            "hoist.core",
            "push",
            f"{registry.host}/{repo}:v1",
            str(path),
            "--plain-http",
            "--progress",
            "plain",
        ]
        if client.chunk:
            cmd += ["--chunk-size", str(client.chunk)]
        # Every run is a first push: the digest cache would let a file pushed before go
        # unhashed (the registry checks it), which is cheaper than what this measures.
        Path(env["HOIST_STATE_DIR"], "digests.json").unlink(missing_ok=True)
        sample = measure(cmd, env=env, cwd=ROOT, registry=registry)
        if sample.returncode == 0 and "@sha256:" not in sample.stdout:
            sample.returncode = -1
    else:
        cmd = [
            PYTHON,
            "-c",
            ORAS_SCRIPT,
            registry.host,
            f"{registry.host}/{repo}:v1",
            str(path),
            "1" if client.chunked else "0",
            str(client.chunk or 16 * MiB),
        ]
        sample = measure(cmd, env=env, cwd=path.parent, registry=registry)
    if sample.returncode != 0:
        raise RuntimeError(
            f"{client.key} failed ({sample.returncode}):\n{sample.stdout[-2000:]}\n"
            f"{sample.stderr[-4000:]}"
        )
    got = registry.blob_size(repo, digest)
    if got != size:
        raise RuntimeError(f"{client.key}: the registry holds {got} bytes for {digest}, not {size}")
    return sample


# -- the file ----------------------------------------------------------------------------------


def ensure_file(size: int) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"random-{size}.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    print(f"writing {format_size(size)} of random bytes to {path} ...", file=sys.stderr)
    tmp = path.with_suffix(".tmp")
    block = 16 * MiB
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)
    return path


def warm(path: Path) -> None:
    """Read the file once so every client finds it in the page cache."""
    buf = bytearray(8 * MiB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


# -- the report --------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def report(
    clients: list[Client],
    size: int,
    args: argparse.Namespace,
    meta: dict[str, str],
    curl_plus_hash: float,
) -> tuple[str, bool]:
    by = {c.key: c for c in clients}
    hashc = next(c for c in clients if c.kind == "hash")
    curl = next(c for c in clients if c.kind == "curl")
    hash_cpu = hashc.median("cpu")
    curl_mbs = size / MB / curl.median("seconds")
    gib = size / GiB
    lines = [
        f"## Push throughput: {format_size(size)} file, median of {args.repeat} run(s)",
        "",
        *(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "| client | seconds | MB/s | × curl | client CPU s/GiB | CPU × hashlib | peak RSS MB "
        "| registry CPU s | others' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in clients:
        secs = c.median("seconds")
        mbs = size / MB / secs
        ratio = None if c.kind == "hash" else mbs / curl_mbs
        reg = None if c.kind == "hash" else c.median("registry_cpu")
        lines.append(
            f"| {c.key} | {secs:.2f} | {mbs:.0f} | {fmt(ratio)} | {c.median('cpu') / gib:.2f} "
            f"| {c.median('cpu') / hash_cpu:.2f} | {c.median('maxrss_mb'):.0f} "
            f"| {fmt(reg, '.1f')} | {c.median('other_cpu'):.1f} |"
        )
    mbs = size / MB / curl_plus_hash
    lines.append(
        f"| curl + its sha256 pre-pass (derived) | {curl_plus_hash:.2f} | {mbs:.0f} "
        f"| {mbs / curl_mbs:.2f} | — | — | — | — | — |"
    )
    lines += [
        "",
        "MB = 10^6 bytes. Seconds are wall time from spawn to exit (interpreter start "
        "included). CPU and peak RSS are the client process's own (os.wait4 rusage). "
        "Others' CPU: what the rest of the machine used during the run (other processes, "
        "steal): well above 0 means the figures are skewed.",
        "",
    ]
    busy = sum(s.busy_start for c in clients for s in c.samples)
    if busy:
        lines += [
            f"Warning: {busy} run(s) had to start while the machine was busy (see `--quiet-wait`).",
            "",
        ]
    noisy = sum(s.other_cpu > MAX_OTHERS_CORES * s.seconds for c in clients for s in c.samples)
    if noisy:
        lines += [
            f"Warning: other processes used more than {MAX_OTHERS_CORES} of a core "
            f"during {noisy} kept run(s): their times are skewed (see `--retries`).",
            "",
        ]

    ok = True
    checks: list[str] = []

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        checks.append(f"- {'PASS' if passed else 'FAIL'}: {text}")

    default = by.get(f"hoist {format_size(DEFAULT_CHUNK)} (default)")
    if default is not None:
        r = size / MB / default.median("seconds") / curl_mbs
        check(
            r >= TARGET_THROUGHPUT,
            f"throughput at the default chunk is {r:.2f}× curl (target ≥ {TARGET_THROUGHPUT})",
        )
        r = default.median("cpu") / hash_cpu
        check(
            r <= TARGET_CPU,
            f"client CPU at the default chunk is {r:.2f}× hashlib's (target ≤ {TARGET_CPU})",
        )
    for c in clients:
        if c.kind == "hoist":
            rss = c.median("maxrss_mb")
            check(
                rss < TARGET_RSS_MB,
                f"{c.key}: peak RSS {rss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)",
            )
    for c in clients:
        if c.kind == "hoist" and c is not default:
            r = c.median("cpu") / hash_cpu
            checks.append(
                f"- info: {c.key}: client CPU {r:.2f}× hashlib's, throughput "
                f"{size / MB / c.median('seconds') / curl_mbs:.2f}× curl"
            )
    lines += ["### Targets", "", *checks, ""]

    lines += [
        "### Every run",
        "",
        "| client | run | seconds | CPU s | RSS MB | registry CPU s | others' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in clients:
        for i, s in enumerate(c.samples, 1):
            lines.append(
                f"| {c.key} | {i} | {s.seconds:.2f} | {s.cpu:.2f} | {s.maxrss_mb:.0f} "
                f"| {s.registry_cpu:.1f} | {s.other_cpu:.1f}"
                f"{' (busy start)' if s.busy_start else ''} |"
            )
    return "\n".join(lines) + "\n", ok


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GiB", help="file size (default 2GiB)")
    parser.add_argument(
        "--chunk-sizes",
        default="16MiB,64MiB",
        help="Hoist chunk sizes to try besides its default (comma-separated)",
    )
    parser.add_argument(
        "--oras-chunk-size",
        default="16MiB",
        help="oras-py chunk size (default 16MiB, its own default)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per client (median reported)")
    parser.add_argument(
        "--out", help="also write the report (Markdown) here, and raw JSON beside it (FILE.json)"
    )
    parser.add_argument("--registry", default="docker-registry", help="registry binary")
    parser.add_argument(
        "--storage",
        choices=("tmpfs", "disk"),
        default="tmpfs",
        help="registry storage on /dev/shm (default: no disk writeback noise) "
        "or on disk (the system temp dir)",
    )
    parser.add_argument("--skip", default="", help="comma-separated kinds to skip: hoist,oras")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for the machine to be "
        "nearly idle (0: don't wait; default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="run a measurement again when other processes used more than "
        f"{MAX_OTHERS_CORES} of a core during it, keeping the least disturbed "
        "run (default 2)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()

    size = parse_size(args.size)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    chunk_sizes = []
    for text in filter(None, (s.strip() for s in args.chunk_sizes.split(","))):
        n = parse_size(text)
        if n != DEFAULT_CHUNK and n not in chunk_sizes:
            chunk_sizes.append(n)

    clients = [
        Client("sha256 (hashlib, 1 MiB reads)", "hash"),
        Client("curl -T (monolithic)", "curl"),
    ]
    if "hoist" not in skip:
        clients.append(Client(f"hoist {format_size(DEFAULT_CHUNK)} (default)", "hoist"))
        clients += [Client(f"hoist {format_size(n)}", "hoist", chunk=n) for n in chunk_sizes]
    if "oras" not in skip:
        oc = parse_size(args.oras_chunk_size)
        clients.append(Client(f"oras-py chunked {format_size(oc)}", "oras", chunk=oc))
        clients.append(Client("oras-py monolithic", "oras", chunked=False))

    storage_parent = Path("/dev/shm") if args.storage == "tmpfs" else Path(tempfile.gettempdir())
    if shutil.disk_usage(storage_parent).free < 2 * size + GiB:
        print(f"not enough room in {storage_parent}; using the system temp dir", file=sys.stderr)
        storage_parent = Path(tempfile.gettempdir())

    path = ensure_file(size)
    print("warming the page cache ...", file=sys.stderr)
    warm(path)

    state = Path(tempfile.mkdtemp(prefix="hoist-bench-state-"))
    env = dict(os.environ)
    env.update(
        HOIST_STATE_DIR=str(state / "state"),
        HOIST_CONFIG_DIR=str(state / "config"),
        HOIST_DATA_DIR=str(state / "data"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTHONPROFILEIMPORTTIME", None)

    registry = Registry(args.registry, storage_parent)
    digest = ""
    try:
        registry.start()
        version = subprocess.run(
            [args.registry, "--version"], capture_output=True, text=True
        ).stdout.strip()
        curl_version = subprocess.run(
            ["curl", "--version"], capture_output=True, text=True
        ).stdout.split()[1]
        # The digest first (and a second warm read): curl needs it in its URL.
        first = measure([PYTHON, "-c", HASH_SCRIPT, str(path)], env=env)
        digest = first.stdout.strip()
        if first.returncode or not digest.startswith("sha256:"):
            raise RuntimeError(f"hashing failed: {first.stderr}")
        measured = clients[:]
        for round_no in range(1, args.repeat + 1):
            # Rotate the order every round so no client always runs first or last.
            shift = (round_no - 1) % len(measured)
            order = measured[shift:] + measured[:shift]
            for client in order:
                sample = run_client(
                    client,
                    registry,
                    path,
                    size,
                    digest,
                    round_no,
                    env,
                    args.quiet_wait,
                    args.retries,
                )
                client.samples.append(sample)
                print(
                    f"[round {round_no}] {client.key}: {sample.seconds:.2f} s, "
                    f"CPU {sample.cpu:.2f} s, RSS {sample.maxrss_mb:.0f} MB, "
                    f"registry CPU {sample.registry_cpu:.1f} s, others' CPU "
                    f"{sample.other_cpu:.1f} s{' (busy start)' if sample.busy_start else ''}",
                    file=sys.stderr,
                )
        hash_s = next(c for c in clients if c.kind == "hash").median("seconds")
        curl_s = next(c for c in clients if c.kind == "curl").median("seconds")
        meta = {
            "file": f"{path} ({size} bytes, {digest})",
            "registry": f"{version}, storage on {storage_parent}, {registry.host}",
            "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"curl {curl_version}",
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        text, ok = report(clients, size, args, meta, curl_s + hash_s)
    finally:
        registry.stop()
        shutil.rmtree(state, ignore_errors=True)

    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        raw = {
            "size": size,
            "digest": digest,
            "meta": meta,
            "clients": [
                {
                    "key": c.key,
                    "kind": c.kind,
                    "chunk": c.chunk,
                    "chunked": c.chunked,
                    "samples": [
                        {k: v for k, v in asdict(s).items() if k not in ("stdout", "stderr")}
                        for s in c.samples
                    ],
                }
                for c in clients
            ],
        }
        Path(str(out) + ".json").write_text(json.dumps(raw, indent=1))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
