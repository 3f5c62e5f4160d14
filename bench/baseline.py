#!/usr/bin/python3
"""Direct jupyter_client baseline for cmd/kgbench.

Talks to a stock ipykernel without kernelgate in between and prints one JSON
object of raw samples on stdout; kgbench computes every percentile, so both
sides share one implementation of the statistics.

Run it with the Debian interpreter, which has ipykernel and jupyter_client:

    /usr/bin/python3 bench/baseline.py -n 200 -warmup 20 -starts 5

Metrics (times in ms unless named *_ns):
  start_ms            KernelManager.start_kernel + client.wait_for_ready
  kernel_info_ms      kernel_info_request -> kernel_info_reply (raw loop)
  execute_ms          execute_request "1+1" -> execute_reply AND iopub idle (raw loop)
  kernel_info_bkc_ms  the same through BlockingKernelClient.kernel_info(reply=True)
  execute_bkc_ms      the same through BlockingKernelClient.execute(reply=True)
                      plus reading iopub until idle
  stream_ms           {"noflush": [...], "flush": [...]}: receive wall clock
                      minus the time.time_ns() the kernel printed, per line

The "raw loop" is the floor a Python client can reach: the KernelManager's
own Session (signing, serialisation) over plain synchronous pyzmq sockets and
one zmq.Poller, with none of the asyncio/nest_asyncio machinery that
BlockingKernelClient wraps around every call in jupyter_client 7.
"""

import argparse
import json
import os
import platform
import queue
import sys
import time

import zmq
import ipykernel
import jupyter_client
from jupyter_client import KernelManager

# Seconds a single request may take before the baseline gives up: a hung
# kernel must fail the benchmark, not stall it.
REQUEST_TIMEOUT = 30.0


def stream_code(lines, sleep, flush):
    return (
        "import time\n"
        "for _i in range(%d):\n"
        "    print(time.time_ns(), flush=%s)\n"
        "    time.sleep(%r)\n" % (lines, "True" if flush else "False", sleep)
    )


class RawClient:
    """Shell and iopub sockets of one kernel, read by a single poll loop."""

    def __init__(self, km):
        self.session = km.session
        self.shell = km.connect_shell()
        self.iopub = km.connect_iopub()
        self.poller = zmq.Poller()
        self.poller.register(self.shell, zmq.POLLIN)
        self.poller.register(self.iopub, zmq.POLLIN)
        # A reply-only request need not read iopub at all: that is the floor.
        self.shell_poller = zmq.Poller()
        self.shell_poller.register(self.shell, zmq.POLLIN)

    def close(self):
        self.shell.close(linger=0)
        self.iopub.close(linger=0)

    def wait_iopub(self):
        """Resend kernel_info until iopub delivers: a SUB socket misses what
        is published before its subscription reaches the kernel."""
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            msg_id = self.session.send(self.shell, "kernel_info_request", {})["header"]["msg_id"]
            got_reply = got_iopub = False
            until = time.monotonic() + 0.5
            while time.monotonic() < until and not (got_reply and got_iopub):
                for sock, _ in self.poller.poll(50):
                    _, m = self.session.recv(sock, mode=zmq.NOBLOCK)
                    if m is None:
                        continue
                    if m["parent_header"].get("msg_id") == msg_id:
                        if sock is self.shell:
                            got_reply = True
                        else:
                            got_iopub = True
            if got_reply and got_iopub:
                self.drain()
                return
        raise RuntimeError("iopub never delivered a message")

    def drain(self):
        """Discard late messages so they are not counted in the next sample."""
        while self.poller.poll(20):
            for sock in (self.shell, self.iopub):
                while True:
                    _, m = self.session.recv(sock, mode=zmq.NOBLOCK)
                    if m is None:
                        break

    def request(self, msg_type, content, want_idle, on_iopub=None):
        """Send one shell request and wait for its reply (and, if want_idle,
        its iopub idle). on_iopub sees each iopub message of the request
        together with the wall clock it was received at."""
        msg_id = self.session.send(self.shell, msg_type, content)["header"]["msg_id"]
        got_reply, got_idle = False, not want_idle
        poller = self.poller if want_idle or on_iopub else self.shell_poller
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while not (got_reply and got_idle):
            if time.monotonic() > deadline:
                raise RuntimeError("%s timed out" % msg_type)
            for sock, _ in poller.poll(1000):
                # Stamp before deserialising: the Go side stamps when the
                # message reaches its reader too.
                recv_ns = time.time_ns()
                _, m = self.session.recv(sock, mode=zmq.NOBLOCK)
                if m is None or m["parent_header"].get("msg_id") != msg_id:
                    continue
                if sock is self.shell:
                    got_reply = True
                    continue
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    got_idle = True
                if on_iopub is not None:
                    on_iopub(m, recv_ns)


def timed(fn, n, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def execute_content(code):
    # Same fields kernelgate's Execute sends for ExecuteRequest{StoreHistory: true}.
    return {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def measure_stream(raw, lines, sleep, flush, reps):
    lat = []

    def on_iopub(m, recv_ns):
        if m["msg_type"] != "stream":
            return
        for line in m["content"]["text"].splitlines():
            line = line.strip()
            if line:
                lat.append((recv_ns - int(line)) / 1e6)

    for _ in range(reps):
        raw.request("execute_request", execute_content(stream_code(lines, sleep, flush)), True, on_iopub)
    return lat


def start_kernel(env):
    """Start a kernel the way a jupyter_client user does; returns the
    manager, a started BlockingKernelClient and the time it took in ms."""
    km = KernelManager(kernel_name="python3")
    t0 = time.perf_counter()
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc, (time.perf_counter() - t0) * 1e3


def stop_kernel(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def bkc_execute(kc):
    msg_id = kc.execute("1+1", store_history=True)
    deadline = time.monotonic() + REQUEST_TIMEOUT
    kc.get_shell_msg(timeout=REQUEST_TIMEOUT)
    while True:
        m = kc.get_iopub_msg(timeout=max(0.001, deadline - time.monotonic()))
        if (
            m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle"
        ):
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="timed iterations per round-trip metric")
    ap.add_argument("-warmup", type=int, default=20, help="untimed iterations first")
    ap.add_argument("-starts", type=int, default=5, help="kernel starts to time")
    ap.add_argument("-stream-lines", type=int, default=50)
    ap.add_argument("-stream-sleep", type=float, default=0.02)
    ap.add_argument("-stream-reps", type=int, default=2)
    args = ap.parse_args()

    # The same extra variable kernelgate gives its kernels (config.kernelEnv),
    # so both start the same way.
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env = dict(os.environ)

    # Resolve the kernelspec once, untimed. jupyter_client's first lookup
    # imports modules for ~0.3 s, a one-time cost the engine also pays
    # outside its timed starts (kgbench resolves its specs first).
    KernelManager(kernel_name="python3").kernel_spec

    starts = []
    for i in range(args.starts):
        km, kc, ms = start_kernel(env)
        starts.append(ms)
        if i < args.starts - 1:
            stop_kernel(km, kc)
    # The last kernel started serves every other metric.
    argv = km.format_kernel_cmd()
    raw = RawClient(km)
    try:
        raw.wait_iopub()
        ki = timed(lambda: raw.request("kernel_info_request", {}, False), args.n, args.warmup)
        raw.drain()  # the busy/idle pairs kernel_info left on iopub
        ex = timed(lambda: raw.request("execute_request", execute_content("1+1"), True), args.n, args.warmup)
        stream = {
            "noflush": measure_stream(raw, args.stream_lines, args.stream_sleep, False, args.stream_reps),
            "flush": measure_stream(raw, args.stream_lines, args.stream_sleep, True, args.stream_reps),
        }
        raw.drain()
        # The typical script's client, for context next to the floor.
        # Its iopub queue holds everything the raw loop also saw; empty it.
        while True:
            try:
                kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                break
        ki_bkc = timed(lambda: kc.kernel_info(reply=True, timeout=REQUEST_TIMEOUT), args.n, args.warmup)
        ex_bkc = timed(lambda: bkc_execute(kc), args.n, args.warmup)
    finally:
        raw.close()
        stop_kernel(km, kc)

    json.dump(
        {
            "versions": {
                "python": platform.python_version(),
                "ipykernel": ipykernel.__version__,
                "jupyter_client": jupyter_client.__version__,
                "pyzmq": zmq.__version__,
                "libzmq": zmq.zmq_version(),
            },
            "argv": argv,
            "start_ms": starts,
            "kernel_info_ms": ki,
            "execute_ms": ex,
            "kernel_info_bkc_ms": ki_bkc,
            "execute_bkc_ms": ex_bkc,
            "stream_ms": stream,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
