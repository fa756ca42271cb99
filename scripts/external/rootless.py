"""The unprivileged user runc's bats suite runs as in its rootless pass (see scripts/test-external).

runc's own tests/rootless.sh runs the suite as a user named "rootless" through sudo, after
writing that user's ranges into /etc/subuid and /etc/subgid and chowning a directory for
cwd.bats. Here the same is done without touching what the host already has: a user of our own
made with useradd (which gives it /etc/subuid and /etc/subgid ranges; the suite is told those,
as ROOTLESS_UIDMAP_START and friends, instead of editing the files), removed again at the end
of the run. The "idmap" feature is always given (newuidmap and newgidmap map the ranges); the
"cgroup" feature only on request (--rootless-cgroup): nothing delegates a cgroup to a plain user
on these hosts, so the sandbox makes one in each cgroup v1 hierarchy, as rootless.sh's v1
branch does (scripts/external/sandbox --delegate).
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

# Eight characters at most: ps prints longer names cut short ("casulo-+"), and ps.bats looks
# for the user's name in its output.
USER = "casulorl"
# Two runs at once would make and remove the same user under each other: a run holds this lock
# (an abstract Unix socket, which goes with the process however it ends) from making the user
# to removing it.
LOCK = "casulo-ext-rootless"
# runc_rootless_idmap (helpers.bash) maps container uid 1000 to the first subordinate uid, and
# cwd.bats wants a directory owned by this container uid that the user itself cannot read.
AUX_UID = 1024


class Unavailable(Exception):
    """The rootless pass cannot run on this host; the message says why."""


def _subid(path, user):
    """(start, count) of `user`'s first range of at least 65536 ids in /etc/subuid or /etc/subgid."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split(":")
        if len(f) == 3 and f[0] == user and f[1].isdigit() and f[2].isdigit() and int(f[2]) >= 65536:
            return int(f[1]), int(f[2])
    return None


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


class RootlessUser:
    """The user, its ranges and the directory cwd.bats needs, for the length of a `with`."""

    def __init__(self, cgroup=False):
        # rootless.sh's "cgroup" feature too: a cgroup the user may write (the sandbox makes
        # it, see scripts/external/sandbox --delegate).
        self.cgroup = cgroup
        self.lock = None
        self.made = False
        self.aux = None
        self.copy = None

    def __enter__(self):
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self):
        if os.geteuid() != 0:
            raise Unavailable("it needs root, to make its user")
        for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
            if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
                raise Unavailable(f"no {tool} here (newuidmap and newgidmap: apt-get install uidmap)")
        self.lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 600
        while True:
            try:
                self.lock.bind("\0" + LOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise Unavailable(f"another rootless run held its lock ({LOCK}) for 10 minutes")
                time.sleep(0.5)
        try:
            pwd.getpwnam(USER)
        except KeyError:
            rc, out = _run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER])
            if rc != 0:
                raise Unavailable(f"useradd {USER}: {out}")
        # Made now or left by a run that was killed: removed at the end either way.
        self.made = True
        pw = pwd.getpwnam(USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.subuid = _subid("/etc/subuid", USER)
        self.subgid = _subid("/etc/subgid", USER)
        if not self.subuid or not self.subgid:
            raise Unavailable(
                f"useradd gave {USER} no range of 65536 ids in /etc/subuid and /etc/subgid "
                "(SUB_UID_COUNT in /etc/login.defs?)"
            )
        self.aux = tempfile.mkdtemp(prefix="casulo-ext-aux.")
        os.chown(self.aux, self.subuid[0] - 1000 + AUX_UID, self.subgid[0])

    def env(self):
        """What rootless.sh exports for its "idmap" (or "idmap+cgroup") pass."""
        return {
            "ROOTLESS_FEATURES": "idmap+cgroup" if self.cgroup else "idmap",
            "ROOTLESS_UIDMAP_START": str(self.subuid[0]),
            "ROOTLESS_UIDMAP_LENGTH": str(self.subuid[1]),
            "ROOTLESS_GIDMAP_START": str(self.subgid[0]),
            "ROOTLESS_GIDMAP_LENGTH": str(self.subgid[1]),
            "ROOTLESS_AUX_DIR": self.aux,
            "ROOTLESS_AUX_UID": str(AUX_UID),
        }

    def owner(self):
        return f"{self.uid}:{self.gid}"

    def wrap(self, argv):
        """argv run as the user, with its groups (as sudo -u does) and the environment as is."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def _reaches(self, path):
        rc, _ = _run(self.wrap(["test", "-r", path, "-a", "-x", path]))
        return rc == 0

    def reachable(self, suite, runtime):
        """(suite, runtime), or copies of them that the user can reach where it cannot reach
        them (a checkout under a directory closed to others, such as root's home): the suite's
        tests/ directory (hard links where they can be) and the runtime binary, under /tmp,
        removed at the end."""
        if self._reaches(suite) and self._reaches(runtime):
            return suite, runtime
        self.copy = tempfile.mkdtemp(prefix="casulo-ext-suite.")
        os.chmod(self.copy, 0o755)
        copy_suite = os.path.join(self.copy, "runc")
        shutil.copytree(
            os.path.join(suite, "tests"),
            os.path.join(copy_suite, "tests"),
            symlinks=True,
            copy_function=_link_or_copy,
        )
        os.makedirs(os.path.join(self.copy, "bin"), mode=0o755)
        copy_runtime = os.path.join(self.copy, "bin", os.path.basename(runtime))
        shutil.copy2(runtime, copy_runtime)
        for p in (copy_suite, copy_runtime):
            if not self._reaches(p):
                raise Unavailable(f"{USER} cannot reach {p}, a copy made for it")
        return copy_suite, copy_runtime

    def __exit__(self, *exc):
        if self.copy:
            shutil.rmtree(self.copy, ignore_errors=True)
        if self.aux:
            shutil.rmtree(self.aux, ignore_errors=True)
        if self.made:
            # userdel also removes the user's /etc/subuid and /etc/subgid lines.
            rc, out = _run(["userdel", USER])
            if rc != 0:
                print(f"rootless: userdel {USER}: {out}", flush=True)
        if self.lock:
            self.lock.close()
        return False
