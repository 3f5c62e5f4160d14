#!/usr/bin/python3
"""Record golden ZMQ multipart frames from a real ipykernel.

The Go tests in this package (TestGolden, and the fuzz seeds) decode these
recordings; they never need Python. Only re-recording does.

To re-record (from the repository root), with Debian's python3-ipykernel,
python3-jupyter-client and python3-zmq installed:

    /usr/bin/python3 internal/zmqwire/testdata/record.py

It writes internal/zmqwire/testdata/golden/ipykernel-<scheme>.json for each
signature scheme in SCHEMES, overwriting the old files, then run
`go test ./internal/zmqwire/` to check them. A fresh random key is used for
each run; it is a test key and is stored in the file.

What it does: writes a connection file, starts
`python3 -m ipykernel_launcher -f <file>`, connects raw pyzmq sockets (DEALER
shell, control and stdin sharing one routing identity, as jupyter_client
does, and SUB iopub subscribed to everything), sends requests built and
signed by jupyter_client.session.Session, and stores every multipart message
exactly as recv_multipart returned it (and the frames it sent), base64
encoded, tagged with channel, direction and the scenario step.

File format:
    {"kernel": "ipykernel 6.x", "key": "...", "scheme": "hmac-sha256",
     "messages": [{"step": "...", "channel": "iopub", "direction": "recv",
                   "frames_b64": ["...", ...]}, ...]}
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import ipykernel
import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden")
PYTHON = "/usr/bin/python3"
TIMEOUT = 30.0  # seconds per step

# scheme -> steps to run. The full scenario under the default scheme; a
# short one under another scheme proves the kernel really signs with it.
SCHEMES = {
    "hmac-sha256": "full",
    "hmac-sha512": "short",
}


class Recorder:
    def __init__(self, scheme):
        self.scheme = scheme
        self.key = uuid.uuid4().hex.encode()
        self.session = Session(key=self.key, signature_scheme=scheme, username="recorder")
        self.messages = []
        self.tmp = tempfile.mkdtemp(prefix="zmqwire-record-")
        self.conn_file, self.info = write_connection_file(
            os.path.join(self.tmp, "kernel.json"),
            ip="127.0.0.1",
            key=self.key,
            signature_scheme=scheme,
        )
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "ipykernel_launcher", "-f", self.conn_file, "--HistoryManager.enabled=False"],
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1", IPYTHONDIR=self.tmp),
        )
        self.ctx = zmq.Context()
        ident = self.session.bsession
        self.socks = {}
        for ch, kind in (("shell", zmq.DEALER), ("control", zmq.DEALER), ("stdin", zmq.DEALER), ("iopub", zmq.SUB)):
            s = self.ctx.socket(kind)
            s.linger = 0
            if kind == zmq.DEALER:
                # stdin must share shell's identity: the kernel routes
                # input_request to the identity the execute_request came from.
                s.setsockopt(zmq.IDENTITY, ident)
            else:
                s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect("tcp://127.0.0.1:%d" % self.info[ch + "_port"])
            self.socks[ch] = s
        self.poller = zmq.Poller()
        for s in self.socks.values():
            self.poller.register(s, zmq.POLLIN)
        self.step = "startup"

    def close(self):
        for s in self.socks.values():
            s.close()
        self.ctx.term()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def send(self, ch, msg_type, content, parent=None):
        msg = self.session.msg(msg_type, content, parent=parent)
        frames = self.session.serialize(msg)
        self.record(ch, "send", frames)
        self.socks[ch].send_multipart(frames)
        return msg["header"]["msg_id"]

    def record(self, ch, direction, frames):
        self.messages.append({
            "step": self.step,
            "channel": ch,
            "direction": direction,
            "frames_b64": [base64.b64encode(f).decode() for f in frames],
        })

    def recv_until(self, done, on_msg=None, timeout=TIMEOUT):
        """Record everything received until done(ch, msg) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s, _ in self.poller.poll(100):
                ch = next(c for c, v in self.socks.items() if v is s)
                frames = s.recv_multipart()
                self.record(ch, "recv", frames)
                _, body = self.session.feed_identities(frames)
                msg = self.session.deserialize(body)  # also checks the HMAC
                if on_msg:
                    on_msg(ch, msg)
                if done(ch, msg):
                    return
        raise SystemExit("timeout in step %s" % self.step)

    def wait_ready(self):
        # Probe with kernel_info_request until the kernel answers; iopub's
        # subscription is then settled too (the reply comes after busy).
        self.step = "startup"
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            self.send("shell", "kernel_info_request", {})
            try:
                self.recv_until(lambda ch, m: ch == "shell", timeout=1.0)
                break
            except SystemExit:
                continue
        else:
            raise SystemExit("kernel did not start")
        # Drain whatever else startup produced, then start clean.
        while True:
            ready = self.poller.poll(500)
            if not ready:
                break
            for s, _ in ready:
                s.recv_multipart()
        self.messages = []

    def request(self, step, ch, msg_type, content, on_msg=None):
        """Send a request and record until its reply and its idle status."""
        self.step = step
        msg_id = self.send(ch, msg_type, content)
        seen = set()

        def done(c, m):
            if m["parent_header"].get("msg_id") != msg_id:
                return False
            if c == ch:
                seen.add("reply")
            if c == "iopub" and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                seen.add("idle")
            return seen == {"reply", "idle"}

        self.recv_until(done, on_msg)

    def execute(self, step, code, on_msg=None):
        self.request(step, "shell", "execute_request", {
            "code": code, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": True, "stop_on_error": True,
        }, on_msg)

    def run(self, which):
        self.wait_ready()
        self.request("kernel_info", "shell", "kernel_info_request", {})
        self.execute("execute_ok", "print('hi'); 1+1")
        if which == "full":
            self.execute("execute_error", "1/0")

            def answer(ch, m):
                if ch == "stdin" and m["msg_type"] == "input_request":
                    self.send("stdin", "input_reply", {"value": "kg"}, parent=m["header"])

            self.execute("input", "x = input('name? '); print('got', x)", answer)
            self.execute("display", "from IPython.display import display, HTML; display(HTML('<b>x</b>'))")
            # A comm message with binary buffers, as ipywidgets sends them.
            self.execute("buffers", "from ipykernel.comm import Comm\n"
                                    "c = Comm(target_name='zmqwire')\n"
                                    "c.send(data={'n': 2}, buffers=[b'\\x00\\x01\\xfe\\xff', b'<IDS|MSG>'])")
        self.step = "shutdown"
        self.send("control", "shutdown_request", {"restart": False})
        self.recv_until(lambda ch, m: ch == "control" and m["msg_type"] == "shutdown_reply")

    def dump(self):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, "ipykernel-%s.json" % self.scheme)
        with open(path, "w") as f:
            json.dump({
                "kernel": "ipykernel " + ipykernel.__version__,
                "key": self.key.decode(),
                "scheme": self.scheme,
                "messages": self.messages,
            }, f, indent=1)
            f.write("\n")
        print("wrote %s (%d messages, %d bytes)" % (path, len(self.messages), os.path.getsize(path)))


def main():
    for scheme, which in SCHEMES.items():
        r = Recorder(scheme)
        try:
            r.run(which)
            r.dump()
        finally:
            r.close()


if __name__ == "__main__":
    sys.exit(main())
