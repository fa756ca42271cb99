#!/usr/bin/env python3
"""Run runc's bats suite and runtime-tools' validation programs against a runtime, and compare
each test's result with the suite's expectations file. Called by scripts/test-external, which
builds the suites first; see there for the options a person uses.

Each bats file and each validation program runs in a sandbox of its own (scripts/external/sandbox:
its own cgroup subtree seen as the root, its own mount namespace and $TMPDIR), which is cleaned
after it, so that files can run side by side and a failing file leaves nothing to the next.
"""

import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SANDBOX = HERE / "sandbox"

# One bats test may take this long (seconds; bats fails it and goes on: a hung runtime costs one
# test, not the file). The slowest tests take about 20 s on a loaded host.
BATS_TEST_TIMEOUT = os.environ.get("CASULO_EXTERNAL_TEST_TIMEOUT", "180")
# A whole bats file, as a backstop (the slowest take a few minutes); after it, the file's tests
# that did not report count as failed.
BATS_TIMEOUT = int(os.environ.get("CASULO_EXTERNAL_TIMEOUT", "1200"))
# A validation program runs a handful of containers; a minute is plenty.
RT_TIMEOUT = int(os.environ.get("CASULO_EXTERNAL_RT_TIMEOUT", "120"))

TAP_LINE = re.compile(r"^(ok|not ok)\s+(\d+)\s*(?:-\s+)?(.*?)\s*$")
# TAP directives after the name: bats' "# skip REASON" and "# timeout after Ns", TAP 13's "# SKIP".
DIRECTIVE = re.compile(r"\s+#\s*(skip\b.*|timeout after \d+s)$", re.IGNORECASE)
BATS_TEST = re.compile(r'^@test\s+"(.*)"\s*\{\s*$')


def parse_tap(text):
    """[(number, name, "pass"|"fail"|"skip")] from TAP output, in order."""
    results = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = TAP_LINE.match(line)
        if not m:
            continue
        ok, num, name = m.groups()
        status = "pass" if ok == "ok" else "fail"
        d = DIRECTIVE.search(name)
        if d:
            name = name[: d.start()]
            if ok == "ok" and d.group(1).lower().startswith("skip"):
                status = "skip"
        results.append((int(num), name.strip(), status))
    return results


def bats_names(path):
    """The test names of a bats file, in order, as bats reports them."""
    names = []
    for line in path.read_text().splitlines():
        m = BATS_TEST.match(line)
        if m:
            names.append(m.group(1).replace('\\"', '"'))
    return names


def sandboxed(name, tmp, argv, cwd, env, timeout, log):
    """Run argv in a sandbox; returns (exit status or "timeout", seconds). The sandbox is
    cleaned afterwards whatever happened, which also ends whatever a timeout left running."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        # stdin is a pipe that stays open until the end: runc's suite expects an open standard
        # input (with /dev/null, a stray byte lands in the first terminal container's output).
        p = subprocess.Popen(
            [str(SANDBOX), "enter", name, tmp] + argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            subprocess.run([str(SANDBOX), "clean", name, tmp], stdout=out, stderr=subprocess.STDOUT)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            p.stdin.close()
    return rc, time.monotonic() - t0


class Suite:
    """One suite's run: results keyed by test name, plus per-unit timings."""

    def __init__(self, key, title, unit):
        self.key = key  # "runc" or "runtime-tools": names the expectations file
        self.title = title
        self.unit = unit  # what one result is: "tests" or "programs"
        self.results = {}  # name -> (status, note)
        self.times = {}  # file or program -> (rc, seconds)
        self.ran = set()  # files or programs that ran (for expectations of a subset)


def run_bats(args, tag, files, env_base):
    suite = Suite("runc", "runc bats", "tests")
    integ = Path(args.runc_suite) / "tests" / "integration"
    logs = Path(args.results) / tag / "runc"
    logs.mkdir(parents=True, exist_ok=True)
    # Longest first (by the last run's times, when there is one), so that the slow files do not
    # end up last on one worker.
    previous = {}
    times_file = logs / "times.json"
    if times_file.exists():
        previous = {k: v[1] for k, v in json.loads(times_file.read_text()).items()}
    files = sorted(files, key=lambda f: -previous.get(f, 30))
    env = dict(env_base, RUNC=args.runtime, BATS_TEST_TIMEOUT=BATS_TEST_TIMEOUT)
    lock = threading.Lock()

    def one(i, f):
        log = logs / (f[: -len(".bats")] + ".log")
        rc, secs = sandboxed(
            f"{os.getpid()}-{i}",
            f"/tmp/casulo-ext.{os.getpid()}-{i}",
            ["script", "-qec", f"bats -t {f}", "/dev/null"],
            integ,
            env,
            BATS_TIMEOUT,
            log,
        )
        text = log.read_text(errors="replace")
        reported = {name: status for _, name, status in parse_tap(text)}
        with lock:
            suite.times[f] = (rc, round(secs, 1))
            suite.ran.add(f)
            for name in bats_names(integ / f):
                status = reported.get(name)
                if status is None:
                    why = "timed out" if rc == "timeout" else f"bats exited with {rc}"
                    suite.results[f"{f}: {name}"] = ("fail", f"not reached: {why}")
                else:
                    suite.results[f"{f}: {name}"] = (status, "")
            for name, status in reported.items():
                suite.results.setdefault(f"{f}: {name}", (status, ""))
            done = len(suite.ran)
        note = " (timed out)" if rc == "timeout" else ""
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
    env = dict(env_base, RUNTIME=args.runtime)
    lock = threading.Lock()
    asserts = {"pass": 0, "fail": 0, "skip": 0}

    def one(i, prog):
        log = logs / f"{prog}.log"
        rc, secs = sandboxed(
            f"{os.getpid()}-rt{i}",
            f"/tmp/casulo-ext.{os.getpid()}-rt{i}",
            [f"validation/{prog}/{prog}.t"],
            root,
            env,
            RT_TIMEOUT,
            log,
        )
        tap = parse_tap(log.read_text(errors="replace"))
        statuses = [s for _, _, s in tap]
        if rc != 0 or "fail" in statuses or not statuses:
            why = "timed out" if rc == "timeout" else f"exit status {rc}"
            status, note = "fail", f"{statuses.count('fail')} of {len(statuses)} failed, {why}"
        elif all(s == "skip" for s in statuses):
            status, note = "skip", ""
        else:
            status, note = "pass", ""
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
    return name.split(": ", 1)[0] if suite.key == "runc" else name


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
    unexpected_pass = sorted(
        n for n, (s, _) in suite.results.items() if s == "pass" and n in expected
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--expectations", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runc-suite")
    ap.add_argument("--runtime-tools-suite")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("only", nargs="*")
    args = ap.parse_args()

    tag = Path(args.runtime).name
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
        t0 = time.monotonic()
        print(f"runc bats: {len(files)} files, {args.jobs} at a time", file=sys.stderr, flush=True)
        suites.append(run_bats(args, tag, files, env))
        print(f"runc bats: ran in {time.monotonic() - t0:.0f} s", file=sys.stderr)
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
    for s in suites:
        ok = report(s, args, tag) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
