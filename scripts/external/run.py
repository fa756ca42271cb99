#!/usr/bin/env python3
"""Run runc's bats suite and runtime-tools' validation programs against a runtime, and compare
each test's result with the suite's expectations file. Called by scripts/test-external, which
builds the suites first; see there for the options a person uses.

Each bats file and each validation program runs in a sandbox of its own (scripts/external/sandbox:
its own cgroup subtree seen as the root, its own mount namespace and $TMPDIR), which is cleaned
after it, so that files can run side by side and a failing file leaves nothing to the next.

With --rootless, runc's bats files run as an unprivileged user instead (scripts/external/rootless.py),
as runc's tests/rootless.sh runs them, and are compared with runc-rootless.expected.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rootless

HERE = Path(__file__).resolve().parent
SANDBOX = HERE / "sandbox"

# A bats test that reports nothing for this long (seconds) is hung: its file is stopped, the
# test counts as failed and the file goes on from the next test. The slowest tests take about
# 30 s on a loaded host.
BATS_TEST_TIMEOUT = int(os.environ.get("CASULO_EXTERNAL_TEST_TIMEOUT", "120"))
# A bats file that reported all its tests and is still there this long after (seconds) is
# stopped: something it started holds it (a runtime left a process on its terminal).
EXIT_GRACE = 15
# A whole bats file, as a backstop (the slowest take a few minutes); after it, the file's tests
# that did not report count as failed.
BATS_TIMEOUT = int(os.environ.get("CASULO_EXTERNAL_TIMEOUT", "1200"))
# A validation program runs a handful of containers; a minute is plenty.
RT_TIMEOUT = int(os.environ.get("CASULO_EXTERNAL_RT_TIMEOUT", "120"))

TAP_LINE = re.compile(r"^(ok|not ok)\s+(\d+)\s*(?:-\s+)?(.*?)\s*$")
TAP_RESULT = re.compile(rb"^(?:ok|not ok) \d+", re.MULTILINE)
# TAP directives after the name: bats' "# skip REASON" and "# timeout after Ns", TAP 13's "# SKIP".
DIRECTIVE = re.compile(r"\s+#\s*(skip\b.*|timeout after \d+s)$", re.IGNORECASE)
# `unshare --mount=FILE` binds a mount namespace to a file (see the sandbox's --host-mounts).
NSFILE_BIND = re.compile(r"\bunshare\b[^\n]*--mount=")
BATS_TEST = re.compile(r'^@test\s+"(.*)"\s*\{\s*$')
# Set on SIGTERM or SIGINT: the running sandboxes are stopped and cleaned, none starts, and
# the run ends (removing the rootless pass's user on its way out).
STOP = threading.Event()


def parse_tap(text):
    """[(number, name, "pass"|"fail"|"skip", note)] from TAP output, in order."""
    results = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = TAP_LINE.match(line)
        if not m:
            continue
        ok, num, name = m.groups()
        status = "pass" if ok == "ok" else "fail"
        note = ""
        d = DIRECTIVE.search(name)
        if d:
            name = name[: d.start()]
            if ok == "ok" and d.group(1).lower().startswith("skip"):
                status = "skip"
            elif ok != "ok":
                note = d.group(1)
        results.append((int(num), name.strip(), status, note))
    return results


def program_status(text, rc):
    """A validation program's result: (status, note, [each assertion's status]).

    It passes when it exits 0 with no failed assertion. It fails, too, when it reports an error
    outside any assertion: a program whose lifecycle checks fail prints the error as a YAML block
    right after the TAP header and then an empty plan ("1..0"), which a TAP consumer would count
    as all skipped. A program that expects the runtime to refuse a config prints no TAP at all
    and exits 0 when it did."""
    statuses = [s for _, _, s, _ in parse_tap(text)]
    lines = [l.rstrip("\r") for l in text.splitlines()]
    top_error = None
    after_test = False
    for i, line in enumerate(lines):
        if TAP_LINE.match(line):
            after_test = True
        elif line.startswith("TAP version") or re.match(r"^1\.\.\d+", line):
            after_test = False
        elif line.strip() == "---" and not after_test:
            block = lines[i + 1 : i + 1 + next((j for j, l in enumerate(lines[i + 1 :]) if l.strip() == "..."), 0)]
            m = next((re.search(r'"error":\s*"(.*?)(\\n|")', l) for l in block if '"error"' in l), None)
            if m and top_error is None:
                top_error = m.group(1)
    if rc == "timeout":
        return "fail", "timed out", statuses
    if rc != 0:
        return "fail", f"exit status {rc}, {statuses.count('fail')} of {len(statuses)} assertions failed", statuses
    if "fail" in statuses:
        return "fail", f"{statuses.count('fail')} of {len(statuses)} assertions failed", statuses
    if top_error:
        return "fail", f"error outside any assertion: {top_error}", statuses
    if statuses and all(s == "skip" for s in statuses):
        return "skip", "", statuses
    return "pass", "", statuses


def bats_names(path):
    """The test names of a bats file, in order, as bats reports them."""
    names = []
    for line in path.read_text().splitlines():
        m = BATS_TEST.match(line)
        if m:
            names.append(m.group(1).replace('\\"', '"').strip())
    return names


def sandboxed(name, tmp, argv, cwd, env, timeout, log, options=(), stall=None, expected=None):
    """Run argv in a sandbox, its output appended to log; returns (exit status, "timeout" or
    "stalled", seconds). "stalled": no TAP result line came for `stall` seconds, or for
    EXIT_GRACE seconds once the `expected` number of results came. The sandbox is cleaned
    afterwards whatever happened, which also ends whatever was left running."""
    t0 = time.monotonic()
    with open(log, "ab") as out:
        start = out.tell()
        # stdin is a pipe that stays open until the end: runc's suite expects an open standard
        # input (with /dev/null, a stray byte lands in the first terminal container's output).
        p = subprocess.Popen(
            [str(SANDBOX), "enter", *options, name, tmp] + argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        results, last = 0, time.monotonic()
        rc = None
        while rc is None:
            try:
                rc = p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if STOP.is_set():
                    rc = "stopped"
                elif now - t0 > timeout:
                    rc = "timeout"
                elif stall:
                    with open(log, "rb") as f:
                        f.seek(start)
                        n = len(TAP_RESULT.findall(f.read()))
                    if n != results:
                        results, last = n, now
                    elif now - last > (EXIT_GRACE if expected and n >= expected else stall):
                        rc = "stalled"
        subprocess.run([str(SANDBOX), "clean", name, tmp], stdout=out, stderr=subprocess.STDOUT)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stdin.close()
    return rc, time.monotonic() - t0


def bats_filter(names):
    """A `bats -f` regular expression (bash's ERE) matching exactly these test names."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", n) for n in names]
    return "^[[:space:]]*(" + "|".join(escaped) + ")[[:space:]]*$"


class Suite:
    """One suite's run: results keyed by test name, plus per-unit timings."""

    def __init__(self, key, title, unit):
        self.key = key  # "runc", "runc-rootless" or "runtime-tools": names the expectations file
        self.title = title
        self.unit = unit  # what one result is: "tests" or "programs"
        self.results = {}  # name -> (status, note)
        self.times = {}  # file or program -> (rc, seconds)
        self.ran = set()  # files or programs that ran (for expectations of a subset)


def run_bats(args, tag, files, env_base, retry_wanted, user=None):
    """The bats files, as root, or as `user` (a rootless.RootlessUser) when given."""
    if user and user.cgroup:
        suite = Suite("runc-rootless-cgroup", "runc bats (rootless, cgroup)", "tests")
    elif user:
        suite = Suite("runc-rootless", "runc bats (rootless)", "tests")
    else:
        suite = Suite("runc", "runc bats", "tests")
    integ = Path(args.runc_suite) / "tests" / "integration"
    logs = Path(args.results) / tag / suite.key
    logs.mkdir(parents=True, exist_ok=True)
    # Longest first (by the last run's times, when there is one), so that the slow files do not
    # end up last on one worker.
    previous = {}
    times_file = logs / "times.json"
    if times_file.exists():
        previous = {k: v[1] for k, v in json.loads(times_file.read_text()).items()}
    files = sorted(files, key=lambda f: -previous.get(f, 30))
    env = dict(env_base, RUNC=args.runtime)
    if user:
        env.update(user.env())
        # root's own runtime dir is not the user's (rootless.sh's sudo does not pass it either).
        env.pop("XDG_RUNTIME_DIR", None)
    lock = threading.Lock()

    def one(i, f):
        if STOP.is_set():
            return
        tmp = f"/tmp/casulo-ext.{os.getpid()}-{i}"

        def bats(cmd):
            argv = ["script", "-qec", cmd, "/dev/null"]
            if user:
                # As sudo -H would, but with a home the user can write to: the sandbox's TMPDIR.
                argv = user.wrap(["env", f"HOME={tmp}", *argv])
            return argv

        log = logs / (f[: -len(".bats")] + ".log")
        log.write_bytes(b"")
        text = (integ / f).read_text()
        options = []
        if "cgroups_rt" in text:
            options.append("--rt")
        if NSFILE_BIND.search(text):
            options.append("--host-mounts")
        if user:
            options += ["--owner", user.owner()]
        if user and user.cgroup:
            options += ["--delegate", str(user.gid)]
        # bats runs a file's tests in order and prints each one's result when it ends. When one
        # hangs, the file is stopped and run again from the test after it.
        remaining = bats_names(integ / f)
        results, rcs, secs = {}, [], 0.0
        while remaining:
            cmd = f"bats -t {f}"
            if len(results) > 0:
                cmd = f"bats -t -f {shlex.quote(bats_filter(remaining))} {f}"
            offset = log.stat().st_size
            rc, t = sandboxed(
                f"{os.getpid()}-{i}",
                tmp,
                bats(cmd),
                integ,
                env,
                BATS_TIMEOUT - secs,
                log,
                options,
                stall=BATS_TEST_TIMEOUT,
                expected=len(remaining),
            )
            secs += t
            rcs.append(rc)
            with open(log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
            for _, name, status, note in parse_tap(text):
                results[name] = (status, note)
            remaining = [n for n in remaining if n not in results]
            if rc != "stalled" or not remaining:
                break
            results[remaining[0]] = ("fail", f"hung: no result in {BATS_TEST_TIMEOUT} s")
            remaining = remaining[1:]
        for name in remaining:
            why = "the file timed out" if rc == "timeout" else f"bats exited with {rc}"
            results[name] = ("fail", f"not reached: {why}")
        # The suite has races of its own (it never waits for its console socket's listener to
        # start, for one): a test that fails unexpectedly gets one more try, alone, and one that
        # passes then is reported by name as passed on a second try. Hung tests are not retried.
        retry = [
            n
            for n, (st, note) in results.items()
            if st == "fail" and not note.startswith("hung") and retry_wanted(f"{f}: {n}")
        ]
        if retry and not STOP.is_set():
            offset = log.stat().st_size
            _, t = sandboxed(
                f"{os.getpid()}-{i}",
                tmp,
                bats(f"bats -t -f {shlex.quote(bats_filter(retry))} {f}"),
                integ,
                env,
                BATS_TIMEOUT,
                log,
                options,
                stall=BATS_TEST_TIMEOUT,
                expected=len(retry),
            )
            secs += t
            with open(log, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
            for _, name, status, _ in parse_tap(text):
                if name in retry and status == "pass":
                    results[name] = ("pass", "passed on a second try")
        with lock:
            suite.times[f] = (rcs, round(secs, 1))
            suite.ran.add(f)
            for name, result in results.items():
                suite.results[f"{f}: {name}"] = result
            done = len(suite.ran)
        hung = sum(1 for r in results.values() if r[1].startswith("hung"))
        note = (f", {hung} hung" if hung else "") + (", timed out" if rc == "timeout" else "")
        if rc == "stalled" and not remaining:
            note += f", did not exit after its last test (stopped after {EXIT_GRACE} s)"
        print(f"  [{done}/{len(files)}] {f}: {secs:.0f} s{note}", file=sys.stderr, flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in [pool.submit(one, i, f) for i, f in enumerate(files)]:
            fut.result()
    times_file.write_text(json.dumps(suite.times, indent=1, sort_keys=True))
    return suite


def run_runtime_tools(args, tag, programs, env_base):
    suite = Suite("runtime-tools", "runtime-tools", "programs")
    root = Path(args.runtime_tools_suite)
    logs = Path(args.results) / tag / "runtime-tools"
    logs.mkdir(parents=True, exist_ok=True)
    # The programs call the runtime without --root: it would keep its state (and casulo its
    # seccomp cache) in the host's default root. Each program gets a root inside its sandbox's
    # TMPDIR instead, which the sandbox's cleaning removes whatever the program did.
    wrapper = logs / "runtime"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec {shlex.quote(str(args.runtime))} --root "$TMPDIR/runtime-root" "$@"\n'
    )
    wrapper.chmod(0o755)
    env = dict(env_base, RUNTIME=str(wrapper))
    lock = threading.Lock()
    asserts = {"pass": 0, "fail": 0, "skip": 0}

    def one(i, prog):
        if STOP.is_set():
            return
        log = logs / f"{prog}.log"
        log.write_bytes(b"")
        rc, secs = sandboxed(
            f"{os.getpid()}-rt{i}",
            f"/tmp/casulo-ext.{os.getpid()}-rt{i}",
            [f"validation/{prog}/{prog}.t"],
            root,
            env,
            RT_TIMEOUT,
            log,
        )
        status, note, statuses = program_status(log.read_text(errors="replace"), rc)
        with lock:
            suite.results[prog] = (status, note)
            suite.times[prog] = (rc, round(secs, 1))
            suite.ran.add(prog)
            for s in statuses:
                asserts[s] += 1

    # The programs are short; two at a time is as fast as more on two cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in [pool.submit(one, i, p) for i, p in enumerate(programs)]:
            fut.result()
    suite.asserts = asserts
    (logs / "times.json").write_text(json.dumps(suite.times, indent=1, sort_keys=True))
    return suite


def read_expectations(path):
    """{name: reason} from an expectations file: "NAME | REASON" lines, # comments."""
    expected = {}
    if not path.exists():
        return expected
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.rpartition(" | ")
        if not sep or not name.strip() or not reason.strip():
            sys.exit(f"{path}:{n}: expected 'NAME | REASON', got: {line}")
        if name in expected:
            sys.exit(f"{path}:{n}: {name} is listed twice")
        expected[name.strip()] = reason.strip()
    return expected


def unit_of(suite, name):
    """The file or program a result name belongs to."""
    return name.split(": ", 1)[0] if suite.key.startswith("runc") else name


def report(suite, args, tag):
    """Print the summary line and the differences from the expectations; True when they hold."""
    exp_path = Path(args.expectations) / f"{suite.key}.expected"
    expected = read_expectations(exp_path)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for status, _ in suite.results.values():
        counts[status] += 1
    out = Path(args.results) / tag / suite.key
    with open(out / "results.tsv", "w") as f:
        for name in sorted(suite.results):
            status, note = suite.results[name]
            f.write(f"{status}\t{name}\t{note}\n")

    extra = ""
    if suite.key == "runtime-tools":
        a = suite.asserts
        extra = f" ({a['pass']} assertions passed, {a['fail']} failed, {a['skip']} skipped)"
    if args.reference:
        print(
            f"{suite.title} ({args.runtime}): {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['skip']} skipped{extra}; failures in {out}/results.tsv"
        )
        return True

    unexpected_fail = sorted(
        n for n, (s, _) in suite.results.items() if s == "fail" and n not in expected
    )
    # A reason that starts with "flaky:" admits both outcomes (a test that depends on timing or
    # on the host's state more than on the runtime).
    unexpected_pass = sorted(
        n
        for n, (s, _) in suite.results.items()
        if s == "pass" and n in expected and not expected[n].startswith("flaky:")
    )
    stale = sorted(
        n for n in expected if n not in suite.results and unit_of(suite, n) in suite.ran
    )
    expected_fail = sum(1 for n, (s, _) in suite.results.items() if s == "fail" and n in expected)
    print(
        f"{suite.title}: {counts['pass']} passed, {expected_fail} expected-fail, "
        f"{counts['skip']} skipped{extra}"
        + (f", {len(unexpected_fail)} UNEXPECTED FAIL" if unexpected_fail else "")
        + (f", {len(unexpected_pass)} UNEXPECTED PASS" if unexpected_pass else "")
    )
    retried = sorted(n for n, (_, note) in suite.results.items() if note == "passed on a second try")
    for n in retried:
        print(f"  passed on a second try (flaky?): {n}")
    for n in unexpected_fail:
        note = suite.results[n][1]
        print(f"  UNEXPECTED FAIL: {n}" + (f" ({note})" if note else ""))
    for n in unexpected_pass:
        print(f"  UNEXPECTED PASS: {n} (listed as: {expected[n]}; remove it from {exp_path.name})")
    for n in stale:
        print(f"  NO SUCH TEST: {n} (listed in {exp_path.name})")
    if unexpected_fail or unexpected_pass:
        print(f"  logs: {out}/")
    return not (unexpected_fail or unexpected_pass or stale)


def timed_bats(args, tag, files, env, user=None):
    t0 = time.monotonic()
    key = "runc" if not user else "runc-rootless-cgroup" if user.cgroup else "runc-rootless"
    title = {"runc": "runc bats", "runc-rootless": "runc bats (rootless)"}.get(
        key, "runc bats (rootless, cgroup)"
    )
    print(f"{title}: {len(files)} files, {args.jobs} at a time", file=sys.stderr, flush=True)
    # Unexpected failures get a second try; a reference runtime's failures are all reported
    # as they come.
    expected = read_expectations(Path(args.expectations) / f"{key}.expected")
    retry_wanted = (lambda n: False) if args.reference else (lambda n: n not in expected)
    suite = run_bats(args, tag, files, env, retry_wanted, user)
    print(f"{title}: ran in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return suite


def run_bats_rootless(args, tag, files, env):
    """The bats files as the rootless pass's user, made for this run and removed after it.
    Exits 77 (after a SKIPPED line) where that user cannot be made or cannot run the suite."""
    try:
        with rootless.RootlessUser(cgroup=args.rootless_cgroup) as user:
            args = argparse.Namespace(**vars(args))
            args.runc_suite, args.runtime = user.reachable(args.runc_suite, args.runtime)
            return timed_bats(args, tag, files, env, user)
    except rootless.Unavailable as e:
        print(f"SKIPPED: runc's bats suite did not run rootless: {e}", file=sys.stderr)
        sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--expectations", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runc-suite")
    ap.add_argument("--runtime-tools-suite")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--rootless", action="store_true")
    ap.add_argument("--rootless-cgroup", action="store_true")
    ap.add_argument("only", nargs="*")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    # The suites run from their own directories.
    args.runtime = os.path.abspath(args.runtime)

    # Results go to results/<tag>/: "casulo" for the runtime under test, a name that tells apart
    # two reference runtimes of the same name otherwise.
    tag = Path(args.runtime).name
    if args.reference:
        tag += "-" + hashlib.sha1(os.path.realpath(args.runtime).encode()).hexdigest()[:8]
    # The suites' own programs find gawk, jq, ip and bats on the usual PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GO", "BATS_"))}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + env.get("PATH", "")
    ok = True
    suites = []
    if args.runc_suite:
        integ = Path(args.runc_suite) / "tests" / "integration"
        files = sorted(p.name for p in integ.glob("*.bats"))
        wanted = [n for n in args.only if n.endswith(".bats")]
        if wanted:
            missing = set(wanted) - set(files)
            if missing:
                sys.exit(f"no such bats file: {' '.join(sorted(missing))}")
            files = wanted
        if args.rootless or args.rootless_cgroup:
            suites.append(run_bats_rootless(args, tag, files, env))
        else:
            suites.append(timed_bats(args, tag, files, env))
    if args.runtime_tools_suite:
        root = Path(args.runtime_tools_suite) / "validation"
        programs = sorted(p.name for p in root.iterdir() if (p / f"{p.name}.t").exists())
        wanted = [n for n in args.only if not n.endswith(".bats")]
        if wanted:
            missing = set(wanted) - set(programs)
            if missing:
                sys.exit(f"no such validation program: {' '.join(sorted(missing))}")
            programs = wanted
        t0 = time.monotonic()
        print(f"runtime-tools: {len(programs)} programs", file=sys.stderr, flush=True)
        suites.append(run_runtime_tools(args, tag, programs, env))
        print(f"runtime-tools: ran in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if STOP.is_set():
        print("stopped (SIGTERM or SIGINT): no results", file=sys.stderr)
        sys.exit(143)
    for s in suites:
        ok = report(s, args, tag) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
