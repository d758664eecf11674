"""Integration-test harness: starts the real programs on 127.0.0.1 with ports the test picks,
talks to them with real sockets, and reports in TAP for prove.

Binaries come from $SF_BIN (default: <repo>/bin). Under a sanitized build ($SF_SANITIZED=1)
a process that exits with a sanitizer report fails the test that started it."""

import atexit
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SF_BIN", os.path.join(REPO, "bin"))
SANITIZED = os.environ.get("SF_SANITIZED") == "1"
# Sanitized binaries are several times slower: scale waits, never assertions on results.
SLOW = 4.0 if SANITIZED else 1.0


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        atexit.register(self._end)

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}", flush=True)
            if diag is not None:
                for line in str(diag).splitlines() or [""]:
                    print(f"#   {line}", flush=True)
        return bool(cond)

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    def eq(self, got, want, name):
        return self.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}")

    def diag(self, msg):
        for line in str(msg).splitlines():
            print(f"# {line}", flush=True)

    def _end(self):
        print(f"1..{self.n}", flush=True)
        stop_all()
        if self.failed:
            os._exit(1)


_procs = []


_ports_given = set()


def free_port():
    """A port free now and never handed out before in this test: two calls in a row may
    otherwise get the same port from the kernel (both were free when asked)."""
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port left")


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Proc:
    """A started program. stderr goes to a file so a test can read the logs."""

    def __init__(self, args, port=None, env=None, cwd=None):
        self.args = args
        self.port = port
        self.logpath = tempfile.mktemp(prefix="sf-log-", suffix=".txt")
        self.log = open(self.logpath, "w+b")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                  cwd=cwd, stdin=subprocess.DEVNULL)
        _procs.append(self)
        if port is not None:
            wait_port(port, proc=self.p)

    def output(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send_signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stops the program; returns its exit code (None if it had to be killed)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode

    def sanitizer_report(self):
        out = self.output()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in out:
                return out
        return None


def stop_all():
    for p in _procs:
        try:
            p.stop(timeout=5)
        except Exception:
            pass


def start_legacy(port=None, extra=()):
    port = port or free_port()
    return Proc([os.path.join(BIN, "legacy-stub"), "--host", "127.0.0.1", "--port", str(port),
                 *extra], port=port)


def start_functions(port=None, extra=()):
    port = port or free_port()
    return Proc([os.path.join(BIN, "function-host"), "--host", "127.0.0.1", "--port",
                 str(port), *extra], port=port)


def yaml_quote(s):
    return json.dumps(s)


class Proxy(Proc):
    """strangler run with a strangler.yaml and routes.yaml written to a fresh folder.
    settings: extra top-level YAML text for strangler.yaml (e.g. limits or timeouts).
    routes_yaml: the rest of routes.yaml after the legacy line (functions:, routes:); default
    none of either, plus routes_extra. admin_extra: more keys under admin: (indented)."""

    def __init__(self, legacy_url, settings="", routes_extra="", port=None, admin_port=None,
                 access="off", env=None, wait=True, routes_yaml=None, admin_extra=""):
        self.dir = tempfile.mkdtemp(prefix="sf-conf-")
        port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.conf = os.path.join(self.dir, "strangler.yaml")
        self.routes = os.path.join(self.dir, "routes.yaml")
        # STRANGLER_TEST_WORKERS=N runs every test's proxy with N workers (a manual check that
        # nothing depends on one event loop; tests that do, e.g. exact max_connections, differ)
        if os.environ.get("STRANGLER_TEST_WORKERS") and "workers:" not in settings:
            settings += f"workers: {int(os.environ['STRANGLER_TEST_WORKERS'])}\n"
        with open(self.conf, "w") as f:
            f.write(f"listen:\n  - address: 127.0.0.1:{port}\n"
                    f"admin:\n  address: 127.0.0.1:{self.admin_port}\n" + admin_extra +
                    f"routes_file: routes.yaml\n"
                    f"log: {{ level: info, access: {yaml_quote(access)} }}\n" + settings)
        with open(self.routes, "w") as f:
            if routes_yaml is None:
                routes_yaml = "functions: {}\nroutes: []\n"
            f.write(f"legacy: {legacy_url}\n" + routes_yaml + routes_extra)
        super().__init__([os.path.join(BIN, "strangler"), "run", "-c", self.conf],
                         port=port if wait else None, env=env)
        self.port = port


@contextlib.contextmanager
def holding_ports(*ports):
    """Listens on the given ports (without SO_REUSEPORT) for the duration: a program that binds
    one of them meanwhile fails with "cannot listen"."""
    held = []
    try:
        for port in sorted(set(ports)):
            ls = socket.socket()
            ls.bind(("127.0.0.1", port))
            ls.listen(1)
            held.append(ls)
        yield
    finally:
        for ls in held:
            ls.close()


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_all(sock, timeout=5.0):
    """Reads until the peer closes or timeout; returns (bytes, closed)."""
    sock.settimeout(timeout * SLOW)
    chunks = []
    closed = False
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                closed = True
                break
            chunks.append(b)
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    return b"".join(chunks), closed


def raw(port, data, timeout=3.0):
    """Sends raw bytes, returns (response bytes, closed by peer)."""
    s = connect(port)
    try:
        s.sendall(data)
        return recv_all(s, timeout)
    finally:
        s.close()


def status_of(resp_bytes):
    try:
        line = resp_bytes.split(b"\r\n", 1)[0].decode()
        return int(line.split(" ")[1])
    except Exception:
        return None


_readers = {}


def _reader(sock):
    """One buffered reader per socket, so bytes of a pipelined next response are kept."""
    key = id(sock)
    entry = _readers.get(key)
    if entry is None or entry[0] is not sock:
        entry = (sock, sock.makefile("rb"))
        _readers[key] = entry
    return entry[1]


def read_response(sock, head_only=False, timeout=10.0):
    """Reads one HTTP/1.1 response from sock (Content-Length or chunked framed).
    Returns (status, headers dict lowercased (last wins), body bytes)."""
    sock.settimeout(timeout * SLOW)
    f = _reader(sock)
    line = f.readline()
    if not line:
        raise ConnectionError("closed before a status line")
    status = int(line.split(b" ")[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, headers, body
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(f.readline().strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            parts.append(f.read(size))
            f.readline()
        body = b"".join(parts)
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return status, headers, body


def parse_responses(data):
    """The complete responses in data, as (status, {lowercase name: value}, body), and the rest:
    a response cut short (no false end) stays in the rest."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ")[1])
        except (IndexError, ValueError):
            break
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, ok = b"", False
            while True:
                size_line, sep, after = rest.partition(b"\r\n")
                try:
                    size = int(size_line, 16)
                except ValueError:
                    break
                if not sep or len(after) < size + 2 or after[size:size + 2] != b"\r\n":
                    break
                if size == 0:
                    ok, rest = True, after[2:]  # the proxy sends no trailers
                    break
                body += after[:size]
                rest = after[size + 2:]
            if not ok:
                break
        elif b"content-length" in hdrs:
            n = int(hdrs[b"content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        else:
            break
        out.append((status, hdrs, body))
        data = rest
    return out, data


def request(port, method="GET", path="/", headers=None, body=None, timeout=10.0):
    """One request on a new connection with http.client; returns (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def echo(port, method="GET", path="/__echo", headers=None, body=None):
    """A request to the stub's /__echo through port; returns (status, parsed JSON)."""
    st, _, data = request(port, method, path, headers, body)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, {"raw": data[:400]}


def echoed_headers(js):
    """The headers /__echo reports, as a dict name(lowercase) -> list of values."""
    out = {}
    for name, value in js.get("headers", []):
        out.setdefault(name.lower(), []).append(value)
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def conf_for(admin_port, token=None):
    """A strangler.yaml (and routes.yaml, and the token file) for CLI tests that talk to a fake
    admin API on admin_port; returns its path."""
    d = tempfile.mkdtemp(prefix="sf-conf-")
    path = os.path.join(d, "strangler.yaml")
    with open(path, "w") as f:
        f.write(f"listen:\n  - address: 127.0.0.1:{free_port()}\n"
                f"admin:\n  address: 127.0.0.1:{admin_port}\n" +
                ("  token_file: token\n" if token else "") +
                "routes_file: routes.yaml\nlog: { level: info, access: off }\n")
    with open(os.path.join(d, "routes.yaml"), "w") as f:
        f.write("legacy: http://127.0.0.1:1\nfunctions: {}\nroutes: []\n")
    if token:
        with open(os.path.join(d, "token"), "w") as f:
            f.write(token + "\n")
    return path


def json_reply(handler, status, body):
    """Answers an http.server request with body (bytes as they are, else as JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


STRANGLER = os.path.join(BIN, "strangler")
# Sanitizer reports found in the stderr of CLI runs (cli_run); a test asserts it stays empty.
cli_sanitizer_hits = []
# Everything CLI runs printed (stdout + stderr), for tests that check what never shows.
cli_outputs = []


def check_sanitizer(args, stderr):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if marker in stderr:
            cli_sanitizer_hits.append(f"strangler {' '.join(args)}:\n{stderr}")


def cli_run(*args, env=None):
    """Runs strangler with args (no $STRANGLER_CONF, no NO_COLOR unless env sets them);
    returns (exit code, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("STRANGLER_CONF", None)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.run([STRANGLER, *args], capture_output=True, text=True, env=e,
                       timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    cli_outputs.append(p.stdout + p.stderr)
    check_sanitizer(args, p.stderr)
    return p.returncode, p.stdout, p.stderr


def cli_on_pty(*args, env=None):
    """Runs strangler with stdout on a terminal (bounded in time); returns (exit code, output
    bytes with CRLF as LF, stderr)."""
    import pty
    import select
    e = dict(os.environ)
    e.pop("STRANGLER_CONF", None)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    mpty, spty = pty.openpty()
    p = subprocess.Popen([STRANGLER, *args], stdout=spty, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=e)
    os.close(spty)
    got = b""
    deadline = time.time() + 20 * SLOW
    while time.time() < deadline:
        r, _, _ = select.select([mpty], [], [], 0.5)
        if r:
            try:
                chunk = os.read(mpty, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            got += chunk
        elif p.poll() is not None:
            break
    os.close(mpty)
    rc = p.wait(timeout=10 * SLOW)
    err = p.stderr.read().decode()
    p.stderr.close()
    check_sanitizer([*args, "(tty)"], err)
    return rc, got.replace(b"\r\n", b"\n"), err
