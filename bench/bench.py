"""The randomd benchmark: randomd against the C limit and the Python alternatives.

Run it with bench/run (as root on Debian 12), which installs what it needs.
Every service under test runs under the randomd uid, alone, on a fresh private
dbus-daemon configured like the system bus with the shipped policy; one load
generator in C (sd-bus) drives them all.  Services are interleaved, each
measurement is repeated, and every number is also given as a ratio to the C
sd-bus responder measured in the same repeat.  Nothing here asserts a time:
it prints, writes JSON, and says which targets (issue 7) are met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = "/usr/bin/python3"
USER = "randomd"
NAME = "org.randomd.Random1"
BIT_INTERVAL = 0.01  # SlowBitInterval for every service: 16 bits take 160 ms
SLOW_JOBS = 1000
SLOW_BITS = 16
SLOW_CONNECTIONS = 8  # dbus-daemon allows 128 pending calls per connection
STALL_AT_MS = 100
STALL_MS = 3000
DEFAULT_BYSTANDER_MATCH = "type='signal',sender='org.randomd.Random1'"
TIMEOUT = 60.0

# A bench-only addition to the system-like bus: root may own the name too,
# and one uid (the load generator's) may hold the 400 bystander connections.
BENCH_BUSCONFIG = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.randomd.Random1"/></policy>
  <policy user="randomd"><allow own="org.randomd.Random1"/></policy>
</busconfig>
"""
BENCH_LIMITS = '<limit name="max_connections_per_user">4096</limit>'

RANDOMD_CONFIG = f"""MaxJobs = 4096
MaxJobsPerUser = 4096
SlowBitInterval = {BIT_INTERVAL}
"""


ALL_PHASES = ("quick", "slow", "bystanders", "stall")


@dataclass(frozen=True)
class Service:
    key: str
    title: str
    library: str = ""  # the Python bus library, if any
    phases: tuple[str, ...] = ALL_PHASES  # what it is measured in

    @property
    def slow(self) -> bool:
        """Whether it has Slow (all but the bus itself)."""
        return "slow" in self.phases


SERVICES = [
    Service("c", "C sd-bus responder"),
    # What the API's broadcasts cost a service that sends them from C.
    Service("c-api", "C sd-bus responder with the API's broadcasts",
            phases=("slow", "bystanders")),
    Service("randomd-fast", "randomd on dbus-fast", "dbus_fast"),
    Service("minimal-fast", "minimal dbus-fast service", "dbus_fast"),
    Service("randomd-next", "randomd on dbus-next", "dbus_next"),
    Service("minimal-next", "minimal dbus-next service", "dbus_next"),
    Service("dbus-python", "dbus-python + GLib, thread per job", "dbus"),
    Service("bus", "dbus-daemon answering GetId", phases=("quick",)),
]
BY_KEY = {s.key: s for s in SERVICES}


@dataclass
class Profile:
    repeats: int = 3
    warmup: float = 0.5
    duration_1x1: float = 1.5
    duration_4x16: float = 2.0
    stall_runs: int = 5  # for randomd on each library
    stall_others: bool = True  # one stall run of each other service, for comparison
    settle: float = 0.3
    client_rounds: int = 8  # interleaved rounds of the four client modes, per repeat
    client_duration: float = 1.0


PROFILES = {
    "default": Profile(repeats=4),
    "quick": Profile(repeats=3, warmup=0.3, duration_1x1=0.6, duration_4x16=0.8,
                     stall_runs=2, stall_others=False, settle=0.2, client_rounds=4,
                     client_duration=0.5),
}


# -- processes -----------------------------------------------------------------

def public_tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if it is still there 10 s later."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       check=True)


def build(workdir: Path, package: Path) -> dict[str, Path]:
    """Compile the C programs into *workdir*; copy randomd there, byte-compiled."""
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libsystemd"], check=True,
                           capture_output=True, text=True).stdout.split()
    binaries = {}
    for name in ("loadgen", "responder"):
        out = workdir / name
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(BENCH / f"{name}.c"), *flags],
                       check=True)
        binaries[name] = out
    # The services, and randomd's package next to its launcher, byte-compiled
    # as installed packages are (the randomd uid cannot write __pycache__
    # into a root-owned checkout, and would compile at every start).  Next to
    # the launcher, not on PYTHONPATH: every Python service then has the same
    # sys.path (an extra entry makes every import look in one more place).
    shutil.copytree(BENCH / "services", workdir / "services",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package, workdir / "services/randomd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(workdir / "services")], check=True)
    for path in workdir.rglob("*"):
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return binaries


class Bus:
    """A fresh private dbus-daemon with the system bus's rules and the shipped policy."""

    def __init__(self) -> None:
        self.dir = public_tempdir("randomd-bench-bus-")
        self.socket = self.dir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        (self.dir / "policy").mkdir(mode=0o755)
        (self.dir / "policy/bench.conf").write_text(BENCH_BUSCONFIG)
        dirs = [REPO / "conf/dbus-1/system.d", self.dir / "policy"]
        includes = "\n  ".join(f"<includedir>{d}</includedir>" for d in dirs)
        template = (REPO / "packaging/system-like-bus.conf.in").read_text()
        config = self.dir / "bus.conf"
        config.write_text(template.replace("@SOCKET@", str(self.socket))
                          .replace("@INCLUDEDIRS@", f"{includes}\n  {BENCH_LIMITS}"))
        # Its stderr only says that it cannot raise its fd limit in a container.
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1",
             "--nosyslog"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.process.stdout.readline()  # printed once it listens

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        terminate(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_status(pid: int, key: str) -> int:
    """A /proc/PID/status field in bytes (VmRSS, VmHWM), 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_cpu() -> float:
    """CPU seconds all processes of the machine used since boot (all CPUs, not idle)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of *pid* in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Runner:
    """Starts services and the load generator; holds the build."""

    def __init__(self, workdir: Path, binaries: dict[str, Path], bystander_match: str) -> None:
        self.workdir = workdir
        self.loadgen = str(binaries["loadgen"])
        self.responder = str(binaries["responder"])
        self.bystander_match = bystander_match
        self.config = workdir / "randomd.conf"
        self.config.write_text(RANDOMD_CONFIG)
        self.config.chmod(0o644)

    # -- one service ---------------------------------------------------

    def argv(self, service: Service, bus: Bus) -> tuple[list[str], dict[str, str]]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        services = self.workdir / "services"
        if service.key == "c":
            return [self.responder, bus.address, str(BIT_INTERVAL)], env
        if service.key == "c-api":
            return [self.responder, bus.address, str(BIT_INTERVAL), "api"], env
        if service.key.startswith("randomd-"):
            env.update(RANDOMD_BUS_LIBRARY=service.library)
            return [PYTHON, str(services / "randomd_main.py"), "--address", bus.address,
                    "--config", str(self.config)], env
        if service.key.startswith("minimal-"):
            return [PYTHON, str(services / "minimal.py"), service.library, bus.address,
                    str(BIT_INTERVAL)], env
        if service.key == "dbus-python":
            return [PYTHON, str(services / "dbus_python_service.py"), bus.address,
                    str(BIT_INTERVAL)], env
        raise ValueError(service.key)

    def start(self, service: Service, bus: Bus) -> Running:
        """Spawn *service* and return once it owns its name (randomd: READY=1)."""
        argv, env = self.argv(service, bus)
        rundir = public_tempdir("randomd-bench-svc-")
        notify = None
        if service.key.startswith("randomd-"):
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(str(rundir / "notify"))
            (rundir / "notify").chmod(0o777)
            notify.settimeout(TIMEOUT)
            env["NOTIFY_SOCKET"] = str(rundir / "notify")
        watcher = subprocess.Popen([self.loadgen, "waitname", bus.address, NAME],
                                   stdout=subprocess.PIPE, text=True)
        if watcher.stdout.readline() != "armed\n":
            raise RuntimeError("the name watcher did not start")
        log = (rundir / "log").open("wb")
        t0 = time.monotonic_ns()
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd="/",
                                   user=USER, group=USER, extra_groups=[])
        ready_ns = None
        if notify is not None:
            while ready_ns is None:
                try:
                    data = notify.recv(4096).decode()
                except TimeoutError:
                    raise RuntimeError(
                        f"{service.key} sent no READY=1: {_tail(rundir / 'log')}") from None
                if "READY=1" in data.splitlines():
                    ready_ns = time.monotonic_ns()
            notify.close()
        try:
            line = watcher.communicate(timeout=TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            watcher.kill()
            process.kill()
            raise RuntimeError(
                f"{service.key} never owned {NAME}: {_tail(rundir / 'log')}") from None
        named_ns = int(line)
        return Running(service, process, rundir, log, ready_s=((ready_ns or named_ns) - t0) / 1e9,
                       named_s=(named_ns - t0) / 1e9)

    # -- the load generator ----------------------------------------------

    def quick(self, bus: Bus, target: str, conns: int, inflight: int, warmup: float,
              duration: float, pid: int = 0) -> dict:
        before = machine_cpu()
        result = self._json([self.loadgen, "quick", bus.address, str(conns), str(inflight),
                             str(warmup), str(duration), target, str(pid), str(bus.pid)])
        # What else ran meanwhile (over the whole run, warm-up included): the
        # machine is shared, and other work moves latencies most of all.
        ours = result["service_cpu_s"] + result["loadgen_cpu_s"] + (
            result["bus_cpu_s"] if target == "service" else 0)
        window = warmup + duration
        result["others_cpu_share"] = max(0.0, (machine_cpu() - before) / window
                                         - ours / result["seconds"]) / (os.cpu_count() or 1)
        return result

    def slow(self, bus: Bus, stall: bool = False) -> dict:
        argv = [self.loadgen, "slow", bus.address, str(SLOW_CONNECTIONS), str(SLOW_JOBS),
                str(SLOW_BITS), str(TIMEOUT)]
        if stall:
            argv += [str(bus.pid), str(STALL_AT_MS), str(STALL_MS)]
        return self._json(argv)

    def bystanders(self, bus: Bus, count: int) -> subprocess.Popen:
        process = subprocess.Popen([self.loadgen, "bystanders", bus.address, str(count),
                                    self.bystander_match], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if process.stdout.readline() != "ready\n":
            raise RuntimeError("the bystanders did not connect")
        return process

    @staticmethod
    def _json(argv: list[str]) -> dict:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 40)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed: {done.stderr.strip()}")
        return json.loads(done.stdout)


@dataclass
class Running:
    service: Service
    process: subprocess.Popen
    rundir: Path
    log: object
    ready_s: float
    named_s: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        if self.process.poll() is None:
            terminate(self.process)
        self.log.close()
        tail = _tail(self.rundir / "log")
        shutil.rmtree(self.rundir, ignore_errors=True)
        return tail


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- the measurements ----------------------------------------------------------

def measure_quick(runner: Runner, service: Service, profile: Profile) -> dict:
    """Spawn to READY, idle RSS, then Quick at 1x1 and 4x16."""
    bus = Bus()
    try:
        result: dict = {}
        if service.key == "bus":
            target, pid = "bus", bus.pid
        else:
            running = runner.start(service, bus)
            target, pid = "service", running.pid
            result.update(ready_s=running.ready_s, named_s=running.named_s)
            time.sleep(profile.settle)
            result["idle_rss"] = proc_status(pid, "VmRSS")
        result["q1x1"] = runner.quick(bus, target, 1, 1, profile.warmup, profile.duration_1x1, pid)
        result["q4x16"] = runner.quick(bus, target, 4, 16, profile.warmup, profile.duration_4x16,
                                       pid)
        if service.key != "bus":
            result["alive"] = running.alive()
            result["log"] = running.stop()
        return result
    finally:
        bus.stop()


def measure_slow(runner: Runner, service: Service, profile: Profile, bystanders: int = 0,
                 stall: bool = False) -> dict:
    """1000 concurrent Slow jobs: time until every Finished arrived, peak RSS, CPU."""
    bus = Bus()
    crowd = None
    try:
        running = runner.start(service, bus)
        if bystanders:
            crowd = runner.bystanders(bus, bystanders)
        time.sleep(profile.settle)
        pid = running.pid
        idle_rss = proc_status(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
        cpu0, bus_cpu0 = proc_cpu(pid), proc_cpu(bus.pid)
        crowd_cpu0 = proc_cpu(crowd.pid) if crowd is not None else 0.0
        result = runner.slow(bus, stall=stall)
        if crowd is not None:
            result["bystanders_cpu_s"] = proc_cpu(crowd.pid) - crowd_cpu0
        result.update(cpu_s=proc_cpu(pid) - cpu0, bus_cpu_s=proc_cpu(bus.pid) - bus_cpu0,
                      idle_rss=idle_rss, peak_rss=proc_status(pid, "VmHWM"),
                      ready_s=running.ready_s)
        result["alive"] = running.alive()
        if stall:
            check = runner.quick(bus, "service", 1, 1, 0, 0.2, pid) if result["alive"] else {}
            result["quick_after"] = bool(check.get("calls")) and not check.get("errors")
        result["log"] = running.stop()
        return result
    finally:
        if crowd is not None:
            crowd.stdin.close()
            crowd.wait(10)
        bus.stop()


def measure_client(runner: Runner, profile: Profile) -> dict:
    """randomd.client against the raw dbus-fast library, on one randomd (client_load.py)."""
    bus = Bus()
    try:
        running = runner.start(BY_KEY["randomd-fast"], bus)
        time.sleep(profile.settle)
        # As root, from the byte-compiled copy of the package the services use.
        done = subprocess.run(
            [PYTHON, str(BENCH / "client_load.py"), str(runner.workdir / "services"),
             bus.address, str(profile.client_rounds), str(profile.warmup),
             str(profile.client_duration)],
            capture_output=True, text=True, timeout=TIMEOUT * 4, cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "RANDOMD_BUS_LIBRARY": "dbus_fast"})
        result = {"alive": running.alive(), "log": running.stop()}
        if done.returncode != 0:
            raise RuntimeError(f"client_load failed: {done.stderr.strip()[-500:]}")
        result.update(json.loads(done.stdout))
        return result
    finally:
        bus.stop()


def client_table(runs: list[dict]) -> str:
    """The client phase: medians over runs of calls/s, the client's CPU per call, ratios."""
    runs = [run for run in runs if run]
    if not runs:
        return ""
    def med(key: str, mode: str) -> float:
        return statistics.median(run[key][mode] for run in runs)
    rows = [("randomd.client.aio quick(), 16 in flight", "aio_16", "raw dbus-fast, 16 in flight",
             "raw_16"),
            ("randomd.client quick(), one at a time", "blocking_1",
             "raw dbus-fast, one at a time", "raw_1")]
    out = ["| Python client (one randomd on dbus-fast) | calls/s | client CPU µs/call "
           "| raw calls/s | raw CPU µs/call | ratio (median of rounds) | >= 0.9 |",
           "|---|---|---|---|---|---|---|"]
    for title, mode, _raw_title, raw in rows:
        ratio = statistics.median(run["ratio"][mode] for run in runs)
        out.append(f"| {title} | {med('median', mode):.0f} | {med('cpu_us_per_call', mode):.1f} "
                   f"| {med('median', raw):.0f} | {med('cpu_us_per_call', raw):.1f} "
                   f"| {ratio:.2f} | {'yes' if ratio >= 0.9 else '**no**'} |")
    return "\n".join(out)


# -- summary ---------------------------------------------------------------------

def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratios(runs: list[dict], key: str, get, base: str = "c") -> list[float]:
    """Per repeat, the value of *key* divided by that of *base* in the same repeat."""
    out = []
    for run in runs:
        a, b = get(run.get(key)), get(run.get(base))
        if a is not None and b:
            out.append(a / b)
    return out


def _get(*path):
    def get(result):
        for step in path:
            if result is None:
                return None
            result = result.get(step) if isinstance(result, dict) else None
        return result
    return get


def _per_call(key: str):
    """Microseconds of *key* (a CPU time of the 4x16 window) per call."""
    def get(result):
        if result and result["q4x16"]["calls"]:
            return 1e6 * result["q4x16"][key] / result["q4x16"]["calls"]
        return None
    return get


def summarize(data: dict) -> dict:
    quick_runs, slow_runs, crowd_runs = data["quick"], data["slow"], data["bystanders"]
    keys = [s.key for s in SERVICES if s.key in data["services"]]
    metrics = {
        "q4x16_cps": ("quick", _get("q4x16", "calls_per_s")),
        "q4x16_p50_us": ("quick", _get("q4x16", "p50_us")),
        "q4x16_p99_us": ("quick", _get("q4x16", "p99_us")),
        "q1x1_cps": ("quick", _get("q1x1", "calls_per_s")),
        "q1x1_p50_us": ("quick", _get("q1x1", "p50_us")),
        "q1x1_p99_us": ("quick", _get("q1x1", "p99_us")),
        "cpu_us_per_call": ("quick", _per_call("service_cpu_s")),
        "bus_cpu_us_per_call": ("quick", _per_call("bus_cpu_s")),
        "ready_ms": ("quick+slow", lambda r: 1e3 * r["ready_s"] if r and "ready_s" in r else None),
        "idle_rss_mib": ("quick",
                         lambda r: r["idle_rss"] / 2**20 if r and "idle_rss" in r else None),
        "slow_s": ("slow", lambda r: r["finished_s"] if r and r["all_finished"] else None),
        "slow_peak_over_idle_mib": ("slow", lambda r: (r["peak_rss"] - r["idle_rss"]) / 2**20
                                    if r else None),
        "slow_cpu_s": ("slow", _get("cpu_s")),
        "slow_bus_cpu_s": ("slow", _get("bus_cpu_s")),
        "crowd_s": ("bystanders", lambda r: r["finished_s"] if r and r["all_finished"] else None),
        "crowd_cpu_s": ("bystanders", _get("cpu_s")),
        "crowd_bus_cpu_s": ("bystanders", _get("bus_cpu_s")),
        "crowd_bystanders_cpu_s": ("bystanders", _get("bystanders_cpu_s")),
    }
    sources = {"quick": quick_runs, "slow": slow_runs, "bystanders": crowd_runs,
               "quick+slow": quick_runs + slow_runs + crowd_runs}
    summary: dict = {}
    for key in keys:
        row = {}
        for metric, (source, get) in metrics.items():
            runs = sources[source]
            row[metric] = median([get(run.get(key)) for run in runs])
            if source != "quick+slow":
                row[metric + "_ratio"] = median(ratios(runs, key, get))
        row["crowd_change"] = median([
            (get_crowd - get_slow) / get_slow
            # Runs read back from a file: one kind may have fewer (an interrupted run).
            for s, c in zip(slow_runs, crowd_runs, strict=False)
            if (get_slow := metrics["slow_s"][1](s.get(key))) and
               (get_crowd := metrics["crowd_s"][1](c.get(key))) is not None])
        lost = [run[key] for run in slow_runs + crowd_runs if run.get(key) is not None
                and not run[key]["all_finished"]]
        row["slow_failed"] = len(lost)
        row["slow_runs"] = sum(1 for run in slow_runs + crowd_runs if key in run)
        stalls = [r for r in data["stall"] if r["service"] == key]
        row["stall_ok"] = sum(1 for r in stalls if r["ok"])
        row["stall_runs"] = len(stalls)
        summary[key] = row
    for lib in ("fast", "next"):
        r, m = f"randomd-{lib}", f"minimal-{lib}"
        if r in summary and m in summary:
            get = metrics["q4x16_cps"][1]
            summary[r]["q4x16_vs_minimal"] = median(ratios(quick_runs, r, get, base=m))
            ready = [(run[r]["ready_s"], run[m]["ready_s"]) for run in quick_runs + slow_runs
                     + crowd_runs if run.get(r) and run.get(m)]
            summary[r]["ready_vs_minimal"] = median([a / b for a, b in ready])
    return summary


def targets(summary: dict) -> list[tuple[str, str, bool | None]]:
    r, c = summary.get("randomd-fast"), summary.get("c")
    if not r or not c:
        return []
    out = []

    def add(text, value, ok):
        if not value.startswith("n/a"):  # not measured (a phase or service left out)
            out.append((text, value, ok))

    def fmt(v, spec=".2f"):
        return "n/a" if v is None else format(v, spec)

    add("Quick 4x16 throughput >= 0.7x C", fmt(r["q4x16_cps_ratio"]) + "x",
        r["q4x16_cps_ratio"] is not None and r["q4x16_cps_ratio"] >= 0.7)
    if "dbus-python" in summary:
        p = summary["dbus-python"]["q4x16_cps"]
        add("Quick 4x16 throughput above dbus-python", f"{fmt(r['q4x16_cps'], '.0f')} vs "
            f"{fmt(p, '.0f')} calls/s", p is not None and r["q4x16_cps"] > p)
    for lib in ("fast", "next"):
        row = summary.get(f"randomd-{lib}")
        if row and row.get("q4x16_vs_minimal") is not None:
            add(f"randomd on dbus-{lib} >= 90% of the minimal dbus-{lib} service (4x16)",
                fmt(100 * row["q4x16_vs_minimal"], ".0f") + "%", row["q4x16_vs_minimal"] >= 0.9)
    add("Quick p50 latency at 1x1 <= 1.2x C", fmt(r["q1x1_p50_us_ratio"]) + "x",
        r["q1x1_p50_us_ratio"] is not None and r["q1x1_p50_us_ratio"] <= 1.2)
    add("1000 Slow jobs: all Finished within 1.3x C", fmt(r["slow_s_ratio"]) + "x",
        r["slow_s_ratio"] is not None and r["slow_s_ratio"] <= 1.3)
    add("1000 Slow jobs: peak RSS <= idle + 8 MiB",
        fmt(r["slow_peak_over_idle_mib"], ".1f") + " MiB",
        r["slow_peak_over_idle_mib"] is not None and r["slow_peak_over_idle_mib"] <= 8)
    add("400 bystanders change the 1000-job time by < 10%",
        fmt(None if r["crowd_change"] is None else 100 * r["crowd_change"], "+.0f") + "%",
        r["crowd_change"] is not None and r["crowd_change"] < 0.10)
    for lib in ("fast", "next"):
        row = summary.get(f"randomd-{lib}")
        if row and row.get("ready_vs_minimal") is not None:
            add(f"spawn to READY <= 1.1x the minimal dbus-{lib} service",
                fmt(row["ready_vs_minimal"]) + "x", row["ready_vs_minimal"] <= 1.1)
    add("idle RSS <= 30 MiB", fmt(r["idle_rss_mib"], ".1f") + " MiB",
        r["idle_rss_mib"] is not None and r["idle_rss_mib"] <= 30)
    for lib in ("fast", "next"):
        row = summary.get(f"randomd-{lib}")
        if row and row["stall_runs"]:
            add(f"3 s bus stall on dbus-{lib}: survives, every Finished arrives",
                f"{row['stall_ok']}/{row['stall_runs']}", row["stall_ok"] == row["stall_runs"])
    return out


def _num(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def table(data: dict, summary: dict) -> str:
    def cell(row, metric, spec, ratio=True):
        v = row.get(metric)
        if v is None:
            return "–"
        text = format(v, spec)
        rv = row.get(metric + "_ratio") if ratio else None
        return f"{text} ({rv:.2f}x)" if rv is not None else text

    lines = [
        "| service | Quick 4x16 calls/s | 4x16 p50 / p99 µs | Quick 1x1 p50 µs | 1x1 p99 µs "
        "| CPU µs/call | spawn→READY ms | idle RSS MiB | 1000 Slow s | Slow peak−idle MiB "
        "| Slow CPU s | +400 bystanders s | bus stall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary.items():
        stall = f"{row['stall_ok']}/{row['stall_runs']}" if row["stall_runs"] else "–"
        crowd = cell(row, "crowd_s", ".3f", ratio=False)
        if row.get("crowd_change") is not None:
            crowd += f" ({100 * row['crowd_change']:+.0f}%)"
        slow = cell(row, "slow_s", ".3f")
        if row.get("slow_failed"):
            slow += f" (failed {row['slow_failed']}/{row['slow_runs']})"
        ready = cell(row, "ready_ms", ".0f", ratio=False)
        if row.get("ready_vs_minimal") is not None:
            ready += f" ({row['ready_vs_minimal']:.2f}x minimal)"
        p = (f"{row['q4x16_p50_us']:.0f} / {row['q4x16_p99_us']:.0f}"
             if row.get("q4x16_p50_us") is not None else "–")
        lines.append(" | ".join([
            f"| {BY_KEY[key].title}",
            cell(row, "q4x16_cps", ".0f"), p,
            cell(row, "q1x1_p50_us", ".0f"), cell(row, "q1x1_p99_us", ".0f", ratio=False),
            cell(row, "cpu_us_per_call", ".1f"),
            ready, cell(row, "idle_rss_mib", ".1f", ratio=False),
            slow, cell(row, "slow_peak_over_idle_mib", ".1f", ratio=False),
            cell(row, "slow_cpu_s", ".2f"), crowd, stall]) + " |")
    out = "\n".join(lines)
    out += ("\n\nWhere the CPU goes in the 1000-job runs (medians, seconds): the service, "
            "dbus-daemon, and with the bystanders also the bystanders' process.\n\n"
            "| service | service CPU | bus CPU | with bystanders: service CPU | bus CPU | "
            "bystanders' CPU |\n|---|---|---|---|---|---|\n")
    out += "\n".join(
        f"| {BY_KEY[key].title} | {_num(row.get('slow_cpu_s'))} | {_num(row.get('slow_bus_cpu_s'))}"
        f" | {_num(row.get('crowd_cpu_s'))} | {_num(row.get('crowd_bus_cpu_s'))}"
        f" | {_num(row.get('crowd_bystanders_cpu_s'))} |"
        for key, row in summary.items() if BY_KEY[key].slow)
    result = targets(summary)
    if result:
        out += ("\n\n| target (randomd on dbus-fast unless named) | measured | met |\n"
                "|---|---|---|\n")
        out += "\n".join(f"| {t} | {v} | {'yes' if ok else '**no**'} |" for t, v, ok in result)
    return out


def environment() -> dict:
    def version(package):
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                              capture_output=True, text=True)
        return done.stdout.strip() or None
    return {
        "kernel": platform.release(), "cpus": os.cpu_count(),
        "python": subprocess.run([PYTHON, "--version"], capture_output=True,
                                 text=True).stdout.strip(),
        "dbus-daemon": version("dbus-daemon"), "libsystemd": version("libsystemd0"),
        "python3-dbus-fast": version("python3-dbus-fast"),
        "python3-dbus-next": version("python3-dbus-next"),
        "python3-dbus": version("python3-dbus"),
    }


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages (others may share the machine)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def header(data: dict) -> str:
    env, p = data["environment"], data["profile"]
    return (f"{data['date']}, {env['cpus']} CPUs, Linux {env['kernel']}, {env['python']}, "
            f"dbus-daemon {env['dbus-daemon']}, dbus-fast {env['python3-dbus-fast']}, "
            f"dbus-next {env['python3-dbus-next']}, dbus-python {env['python3-dbus']}; "
            f"profile {data['profile_name']}: {p['repeats']} repeats, medians; ratios to the C "
            f"responder of the same repeat; Quick windows {p['duration_1x1']} s (1x1) and "
            f"{p['duration_4x16']} s (4x16) after {p['warmup']} s warm-up; {SLOW_JOBS} Slow "
            f"jobs of {SLOW_BITS} bits at {BIT_INTERVAL * 1000:g} ms per bit over "
            f"{SLOW_CONNECTIONS} connections; bystander rule `{data['bystander_match']}`; "
            f"stall: SIGSTOP of dbus-daemon {STALL_AT_MS} ms into the jobs for {STALL_MS} ms; "
            f"load average {data['loadavg_before']} before, {data.get('loadavg_after', '?')} "
            f"after ({data.get('elapsed_s', 0):.0f} s)" + (
                "." if data.get("others_cpu_share") is None else
                f"; other processes used a median {100 * data['others_cpu_share']:.0f}% of the "
                "CPUs during the Quick runs."))


def update_readme(text: str) -> None:
    readme = BENCH / "README.md"
    begin, end = "<!-- results: begin -->", "<!-- results: end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{readme} has no {begin} ... {end} block")
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


# -- main ------------------------------------------------------------------------

def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (about 2 minutes)")
    parser.add_argument("--repeats", type=int,
                        help="repeats of every measurement (default 4, --quick 3)")
    parser.add_argument("--services", default=",".join(s.key for s in SERVICES),
                        help="comma-separated subset of: " + ", ".join(s.key for s in SERVICES))
    parser.add_argument("--bystanders", type=int, default=400)
    parser.add_argument("--bystander-match", default=DEFAULT_BYSTANDER_MATCH)
    parser.add_argument("--no-stall", action="store_true", help="leave out the bus stall runs")
    parser.add_argument("--phases", default="quick,slow,bystanders,client",
                        help="which of quick, slow, bystanders, client to run (default: all)")
    parser.add_argument("--randomd", type=Path, default=REPO / "randomd", metavar="DIR",
                        help="the randomd package to measure (default: this checkout's), "
                        "e.g. an older version for a before/after comparison")
    parser.add_argument("--json", type=Path, help="where to write the results "
                        "(default bench/results/<date>.json)")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the results table in bench/README.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (services run under the randomd uid)")
    profile_name = "quick" if args.quick else "default"
    profile = PROFILES[profile_name]
    if args.repeats:
        profile.repeats = args.repeats
    unknown = [k for k in args.services.split(",") if k not in BY_KEY]
    if unknown:
        parser.error(f"unknown service {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
    phases = ("quick", "slow", "bystanders", "client")
    unknown = [p for p in args.phases.split(",") if p not in phases]
    if unknown:
        parser.error(f"unknown phase {', '.join(unknown)}; known: {', '.join(phases)}")
    services = [BY_KEY[k] for k in args.services.split(",")]
    ensure_user(USER)
    workdir = public_tempdir("randomd-bench-")
    started = time.monotonic()
    data = {"date": time.strftime("%Y-%m-%d %H:%M"), "profile_name": profile_name,
            "profile": vars(profile), "bystander_match": args.bystander_match,
            "bystanders_count": args.bystanders, "environment": environment(),
            "randomd": str(args.randomd), "loadavg_before": _loadavg(),
            "services": [s.key for s in services], "quick": [], "slow": [], "bystanders": [],
            "stall": [], "client": []}
    try:
        runner = Runner(workdir, build(workdir, args.randomd.resolve()), args.bystander_match)
        for repeat in range(profile.repeats):
            # Interleaved: each repeat runs every service, starting at a different one.
            order = services[repeat % len(services):] + services[:repeat % len(services)]
            for phase, func, kwargs in (
                    ("quick", measure_quick, {}),
                    ("slow", measure_slow, {}),
                    ("bystanders", measure_slow, {"bystanders": args.bystanders})):
                if phase not in args.phases.split(","):
                    continue
                results = {}
                for service in order:
                    if phase not in service.phases:
                        continue
                    log(f"[{time.monotonic() - started:5.0f} s] repeat {repeat + 1}/"
                        f"{profile.repeats} {phase}: {service.key}")
                    try:
                        results[service.key] = func(runner, service, profile, **kwargs)
                    except Exception as error:  # one failed service does not stop the run
                        log(f"  failed: {error}")
                        results[service.key] = None
                data[phase].append(results)
            if "client" in args.phases.split(","):
                log(f"[{time.monotonic() - started:5.0f} s] repeat {repeat + 1}/"
                    f"{profile.repeats} client: randomd.client against raw dbus-fast")
                try:
                    data["client"].append(measure_client(runner, profile))
                except Exception as error:
                    log(f"  failed: {error}")
                    data["client"].append(None)
        if not args.no_stall:
            for run in range(profile.stall_runs):
                for service in services:
                    randomd = service.key.startswith("randomd-")
                    if ("stall" not in service.phases
                            or not (randomd or (profile.stall_others and run == 0))):
                        continue
                    log(f"[{time.monotonic() - started:5.0f} s] stall {run + 1}: {service.key}")
                    try:
                        r = measure_slow(runner, service, profile, stall=True)
                        r["ok"] = bool(r["alive"] and r["all_finished"] and r["quick_after"])
                    except Exception as error:
                        r = {"ok": False, "error": str(error)}
                    r["service"] = service.key
                    log(f"  {'ok' if r['ok'] else 'FAILED'}: finished {r.get('finished')}/"
                        f"{SLOW_JOBS}, alive {r.get('alive')}"
                        + ("" if r["ok"] else f"; {r.get('log') or r.get('error', '')}"))
                    data["stall"].append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shares = [r[q]["others_cpu_share"] for run in data["quick"] for r in run.values()
              if r for q in ("q1x1", "q4x16")]
    data["others_cpu_share"] = median(shares)
    data["elapsed_s"] = time.monotonic() - started
    data["loadavg_after"] = _loadavg()
    data["summary"] = summarize(data)
    data["targets"] = [{"target": t, "measured": v, "met": ok} for t, v, ok in
                       targets(data["summary"])]
    text = f"{header(data)}\n\n{table(data, data['summary'])}"
    if data["client"]:
        text += "\n\n" + client_table(data["client"])
    print(text)
    path = args.json or BENCH / "results" / (time.strftime("%Y%m%d-%H%M%S") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    log(f"bench: {data['elapsed_s']:.0f} s; results in {path}")
    if args.update_readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
