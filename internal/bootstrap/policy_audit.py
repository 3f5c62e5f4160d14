
# kernelgate Python policy "audit", run right after the bootstrap in the same
# silent execute. An audit hook (PEP 578) refuses, with PermissionError:
#   - starting programs: subprocess, os.system, os.popen, os.exec*, os.spawn*,
#     os.posix_spawn*, pty.spawn;
#   - sockets to anything but loopback: connect, bind, sendto and sendmsg on
#     IP sockets need a loopback address (127.0.0.0/8, ::1, "localhost");
#     unix sockets need a path under /tmp, /dev/shm or $HOME (abstract ones
#     pass: they stay in the kernel's own network namespace); other families
#     are refused.
# Defence in depth only: ctypes, native extensions and other tricks get
# around any audit hook. The sandbox is the boundary, not this.
# Hooks cannot be removed once added. The hook keeps what it needs in its
# own closure, so rebinding modules' names (os.path, ipaddress) later
# changes nothing.
def _kernelgate_policy():
    import ipaddress
    import os
    import socket
    import sys

    ip_address = ipaddress.ip_address
    realpath = os.path.realpath
    fspath = os.fspath
    inet = (socket.AF_INET, socket.AF_INET6)
    unix = socket.AF_UNIX
    loopback_names = frozenset(("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"))
    roots = tuple(r.rstrip("/") + "/" for r in {realpath(p) for p in ("/tmp", "/dev/shm", os.environ.get("HOME") or "/tmp")})
    programs = frozenset(("subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "pty.spawn"))
    sockets = frozenset(("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"))
    watched = programs | sockets

    def short(v):
        s = repr(v)
        return s if len(s) <= 200 else s[:197] + "..."

    def loopback(host):
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("ascii", "replace")
        if not isinstance(host, str):
            return False
        if host.lower() in loopback_names:
            return True
        try:
            return ip_address(host).is_loopback
        except ValueError:
            return False

    def allowed(sock, address):
        family = getattr(sock, "family", None)
        if family in inet:
            return isinstance(address, tuple) and len(address) >= 2 and loopback(address[0])
        if family == unix:
            if isinstance(address, (bytes, bytearray)):
                if address[:1] == b"\0":
                    return True
            elif isinstance(address, str):
                if address[:1] == "\0":
                    return True
            else:
                return False
            try:
                path = realpath(fspath(address))
            except (TypeError, ValueError, OSError):
                return False
            if isinstance(path, bytes):
                path = path.decode("utf-8", "surrogateescape")
            return path.startswith(roots)
        return False

    def hook(event, args):
        if event not in watched:
            return
        if event in programs:
            what = args[0] if event in ("os.system", "pty.spawn") else args[1] if event in ("subprocess.Popen", "os.exec", "os.posix_spawn") else args[1:3]
            raise PermissionError("kernelgate policy: starting programs is not allowed in this kernel (%s %s)" % (event, short(what)))
        sock, address = args[0], args[1] if len(args) > 1 else None
        if event == "socket.sendmsg" and address is None:
            return  # a connected socket: its connect was checked
        if not allowed(sock, address):
            raise PermissionError("kernelgate policy: %s to %s is not allowed in this kernel; only loopback addresses and unix sockets under /tmp or $HOME are" % (event, short(address)))

    sys.addaudithook(hook)
    kg = sys.modules.get("_kernelgate")
    if kg is not None:
        kg.policy = "audit"


_kernelgate_policy()
del _kernelgate_policy
