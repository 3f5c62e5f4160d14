"""Records golden WebSocket frames with Jupyter Server's own serializers.

Run with /usr/bin/python3 (Debian's python3-jupyter-server):

    /usr/bin/python3 record.py > golden.json   # frames a client would send
    /usr/bin/python3 record.py check FILE      # parse frames kernelgate wrote

The serializers are jupyter_server.base.zmqhandlers' (1.23): the legacy
binary framing (serialize_binary_message) and the v1 subprotocol
(serialize_msg_to_ws_v1), the same byte layouts JupyterLab's serialize.ts
writes.
"""
import base64
import json
import sys

from jupyter_server.base import zmqhandlers as z


def header(msg_id, msg_type):
    return {"msg_id": msg_id, "msg_type": msg_type, "session": "client-session-1",
            "username": "alice", "date": "2026-11-26T12:00:00.000000Z", "version": "5.3"}


MESSAGES = [
    ("shell", {"header": header("m-exec", "execute_request"), "parent_header": {},
               "metadata": {}, "content": {"code": "print('héllo')\n", "silent": False,
                                           "store_history": True, "user_expressions": {},
                                           "allow_stdin": True, "stop_on_error": True},
               "buffers": []}),
    ("stdin", {"header": header("m-input", "input_reply"),
               "parent_header": header("k-req", "input_request"),
               "metadata": {}, "content": {"value": "42"}, "buffers": []}),
    ("control", {"header": header("m-int", "interrupt_request"), "parent_header": {},
                 "metadata": {"x": [1, 2]}, "content": {}, "buffers": []}),
    ("shell", {"header": header("m-comm", "comm_msg"), "parent_header": {},
               "metadata": {}, "content": {"comm_id": "c1", "data": {"a": 1}},
               "buffers": [b"\x00\x01\x02", b"", b"tail"]}),
]


def b64(b):
    return base64.b64encode(bytes(b)).decode()


def record():
    out = []
    for channel, msg in MESSAGES:
        want = {"channel": channel, "header": msg["header"], "parent_header": msg["parent_header"],
                "metadata": msg["metadata"], "content": msg["content"],
                "buffers": [b64(b) for b in msg["buffers"]]}
        parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
        out.append({"name": msg["header"]["msg_type"] + "/v1", "framing": "v1",
                    "frame": b64(z.serialize_msg_to_ws_v1(parts + msg["buffers"], channel)), "want": want})
        legacy = dict(msg, channel=channel)
        if msg["buffers"]:
            frame = z.serialize_binary_message(legacy)
            out.append({"name": msg["header"]["msg_type"] + "/legacy-binary", "framing": "legacy-binary",
                        "frame": b64(frame), "want": want})
        else:
            out.append({"name": msg["header"]["msg_type"] + "/legacy-text", "framing": "legacy-text",
                        "frame": b64(json.dumps(legacy).encode()), "want": want})
    json.dump(out, sys.stdout, indent=1)
    print()


def check(path):
    """Parses frames the Go encoder wrote, as Jupyter's clients would."""
    parsed = []
    for f in json.load(open(path)):
        raw = base64.b64decode(f["frame"])
        if f["framing"] == "v1":
            channel, parts = z.deserialize_msg_from_ws_v1(raw)
            header, parent, metadata, content = (json.loads(p) for p in parts[:4])
            buffers = parts[4:]
        elif f["framing"] == "legacy-binary":
            msg = z.deserialize_binary_message(raw)
            channel, header, parent = msg["channel"], msg["header"], msg["parent_header"]
            metadata, content, buffers = msg["metadata"], msg["content"], msg["buffers"]
        else:
            msg = json.loads(raw)
            channel, header, parent = msg["channel"], msg["header"], msg["parent_header"]
            metadata, content, buffers = msg["metadata"], msg["content"], msg["buffers"]
        for h in (header, parent):  # extract_dates may turn dates into datetimes
            if "date" in h and not isinstance(h["date"], str):
                h["date"] = h["date"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        parsed.append({"channel": channel, "header": header, "parent_header": parent,
                       "metadata": metadata, "content": content,
                       "buffers": [b64(b) for b in buffers]})
    json.dump(parsed, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        check(sys.argv[2])
    else:
        record()
