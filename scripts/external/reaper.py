#!/usr/bin/env python3
"""reaper.py COMMAND...: run COMMAND as a child subreaper that reaps every orphan under it.

A detached container's init is orphaned when the runtime exits; the kernel hands it to the
nearest subreaper or to pid 1. Where pid 1 is not an init that reaps (as in some CI sandboxes),
a killed orphan stays a zombie, still answering `kill -0`, and tests that wait for a container's
processes to be gone fail for every runtime. Exits with COMMAND's status once COMMAND ends."""

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit(f"reaper: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
main = os.fork()
if main == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
while True:
    pid, status = os.wait()
    if pid == main:
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
