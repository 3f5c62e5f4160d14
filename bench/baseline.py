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
    if "-job" in sys.argv[1:]:
        return run_job()
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


# ---------------------------------------------------------------------------
# Job mode: `baseline.py -job` reads one JSON job from stdin (kgbench writes
# it, so both sides run exactly the same code strings) and prints one JSON
# result. Modes: "peer" (the latency workloads on one kernel), "concurrency"
# (C kernels, one outstanding `1+1` each, for S seconds) and "scale" (K idle
# kernels held until kgbench has measured them).


def run_cell(raw, code, on_iopub=None):
    """Execute code on the raw client until its reply and its idle status.
    Returns (ms, wire bytes of the cell's messages). on_iopub(m, recv_ns,
    recv_perf) sees each iopub message of the cell as it arrives."""
    t0 = time.perf_counter()
    msg_id = raw.session.send(raw.shell, "execute_request", execute_content(code))["header"]["msg_id"]
    got_reply = got_idle = False
    nbytes = 0
    status = None
    deadline = time.monotonic() + 4 * REQUEST_TIMEOUT
    while not (got_reply and got_idle):
        if time.monotonic() > deadline:
            raise RuntimeError("execute timed out: %r" % code[:60])
        for sock, _ in raw.poller.poll(1000):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                # Stamp before deserialising, as the Go clients stamp when a
                # WebSocket message has arrived, before decoding it.
                recv_ns, recv_perf = time.time_ns(), time.perf_counter()
                _, msg_list = raw.session.feed_identities(frames)
                m = raw.session.deserialize(msg_list)
                if m["parent_header"].get("msg_id") != msg_id:
                    continue
                nbytes += sum(len(f) for f in frames)
                if sock is raw.shell:
                    got_reply = True
                    status = m["content"].get("status")
                    continue
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    got_idle = True
                if on_iopub is not None:
                    on_iopub(m, recv_ns, recv_perf)
    if status != "ok":
        raise RuntimeError("cell failed (%s): %r" % (status, code[:60]))
    return (time.perf_counter() - t0) * 1e3, nbytes


def start_many(env, n, parallel):
    """Starts n kernels, at most `parallel` starting at once; returns
    [(km, kc)] all ready."""
    out = []
    for i in range(0, n, parallel):
        batch = []
        for _ in range(min(parallel, n - i)):
            km = KernelManager(kernel_name="python3")
            km.start_kernel(env=env)
            batch.append(km)
        for km in batch:
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=120)
            out.append((km, kc))
    return out


def stop_many(kernels):
    for km, kc in kernels:
        try:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        except Exception as e:  # keep stopping the others
            print("stop kernel: %s" % e, file=sys.stderr)


def job_peer(job, env):
    codes = job["codes"]
    wl = set(job["workloads"])
    out = {"start_ms": [], "execute_ms": [], "stream_ms": {}, "plot_ms": [], "flood": [], "dataframe": []}
    kernels = []
    try:
        for _ in range(max(1, job.get("starts", 0))):
            km, kc, ms = start_kernel(env)
            kernels.append((km, kc))
            out["start_ms"].append(ms)
        if job.get("starts", 0) == 0:
            out["start_ms"] = []
        km, kc = kernels[-1]
        raw = RawClient(km)
        try:
            raw.wait_iopub()
            if "rtt" in wl:
                out["execute_ms"] = timed(lambda: run_cell(raw, "1+1"), job["n"], job["warmup"])
            if "stream" in wl:
                for key in ("noflush", "flush"):
                    lat = []

                    def on_stream(m, recv_ns, _perf):
                        if m["msg_type"] != "stream":
                            return
                        for line in m["content"]["text"].splitlines():
                            line = line.strip()
                            if line:
                                lat.append((recv_ns - int(line)) / 1e6)

                    for _ in range(job["stream_reps"]):
                        run_cell(raw, codes["stream_" + key], on_stream)
                    out["stream_ms"][key] = lat
            if "plot" in wl:
                run_cell(raw, codes["plot_setup"])
                for _ in range(job["plot_reps"]):
                    got = []

                    def on_plot(m, _ns, recv_perf):
                        if m["msg_type"] == "display_data" and "image/png" in m["content"].get("data", {}):
                            got.append(recv_perf)

                    t0 = time.perf_counter()
                    run_cell(raw, codes["plot"], on_plot)
                    if not got:
                        raise RuntimeError("plot: no image/png arrived")
                    out["plot_ms"].append((got[0] - t0) * 1e3)
            if "dataframe" in wl:
                run_cell(raw, codes["df_setup"])
                for _ in range(job["df_reps"]):
                    ms, nbytes = run_cell(raw, codes["df"])
                    out["dataframe"].append({"ms": ms, "wire_bytes": nbytes})
            if "flood" in wl:
                for _ in range(job["flood_reps"]):
                    got = [0]

                    def on_flood(m, _ns, _perf):
                        if m["msg_type"] == "stream":
                            got[0] += len(m["content"]["text"].encode())

                    ms, nbytes = run_cell(raw, codes["flood"], on_flood)
                    out["flood"].append({"ms": ms, "wire_bytes": nbytes, "stream_bytes": got[0]})
        finally:
            raw.close()
    finally:
        stop_many(kernels)
    return out


def job_concurrency(job, env):
    """C clients, each with its own kernel and one `1+1` outstanding at a
    time, for S seconds; one thread and one poller drive them all, which is
    the most a single Python client process gets out of the kernels."""
    kernels = start_many(env, job["clients"], job.get("parallel", 4))
    raws = []
    try:
        raws = [RawClient(km) for km, _ in kernels]
        for raw in raws:
            raw.wait_iopub()
            for _ in range(job["warmup"]):
                run_cell(raw, "1+1")
        poller = zmq.Poller()
        owner = {}
        state = {}
        for raw in raws:
            for s in (raw.shell, raw.iopub):
                poller.register(s, zmq.POLLIN)
                owner[s] = raw

        def send(raw):
            mid = raw.session.send(raw.shell, "execute_request", execute_content("1+1"))["header"]["msg_id"]
            state[raw] = [mid, time.perf_counter(), False, False]

        lat = []
        began = time.perf_counter()
        end = began + job["seconds"]
        for raw in raws:
            send(raw)
        outstanding = len(raws)
        while outstanding:
            for sock, _ in poller.poll(1000):
                raw = owner[sock]
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    _, msg_list = raw.session.feed_identities(frames)
                    m = raw.session.deserialize(msg_list)
                    st = state.get(raw)
                    if st is None or m["parent_header"].get("msg_id") != st[0]:
                        continue
                    if sock is raw.shell:
                        st[2] = True
                    elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        st[3] = True
                    if st[2] and st[3]:
                        now = time.perf_counter()
                        lat.append((now - st[1]) * 1e3)
                        if now < end:
                            send(raw)
                        else:
                            del state[raw]
                            outstanding -= 1
        elapsed = time.perf_counter() - began
        return {"latency_ms": lat, "count": len(lat), "elapsed_s": elapsed}
    finally:
        for raw in raws:
            raw.close()
        stop_many(kernels)


def job_scale(job, env):
    """Starts K kernels, says so on stdout, holds them until stdin says
    done (kgbench measures them from /proc meanwhile), then stops them."""
    t0 = time.perf_counter()
    kernels = start_many(env, job["kernels"], job.get("parallel", 4))
    try:
        print(json.dumps({"ready": True, "start_s": time.perf_counter() - t0,
                          "pids": [km.provisioner.pid for km, _ in kernels]}), flush=True)
        sys.stdin.readline()
    finally:
        stop_many(kernels)
    return {"done": True}


def run_job():
    job = json.loads(sys.stdin.readline())
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env = dict(os.environ)
    KernelManager(kernel_name="python3").kernel_spec  # the one-time lookup, untimed
    out = {"peer": job_peer, "concurrency": job_concurrency, "scale": job_scale}[job["mode"]](job, env)
    import importlib

    out["versions"] = {
        k: getattr(importlib.import_module(k), "__version__", "") for k in ("jupyter_server", "pandas", "numpy", "matplotlib")
    }
    out["versions"].update({
        "python": platform.python_version(),
        "ipykernel": ipykernel.__version__,
        "jupyter_client": jupyter_client.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
    })
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
