#!/usr/bin/env python3
"""bench/idle_mem.py: a proxy's memory per idle keep-alive client connection.

    idle_mem.py --port PORT --pids PID[,PID...] [--conns 5000] [--path /100]
                [--window 50] [--settle 1] [--timeout 60]

Called by bench/run.sh on a freshly started proxy listening on 127.0.0.1:PORT
whose serving processes are PIDS (nginx: its worker, not the master).

1. Warm-up: WINDOW connections, one request each, then closed: the proxy's lazy
   allocations happen and its upstream pool holds about WINDOW connections.
2. Before: VmRSS, RssAnon (heap, anonymous mappings, stacks: the process's own
   memory) and the Rss of [heap] (brk) of PIDS, summed, from /proc.
3. CONNS connections, each sending one GET PATH (HTTP/1.1, keep-alive) and
   reading the whole answer, at most WINDOW of them in flight at once (so the
   proxy's upstream pool stays at about WINDOW connections); then all of them
   stay open, idle.
4. After SETTLE seconds: the same figures, and how many connections the proxy
   has not closed.
5. Everything is closed.

Prints one line that run.sh parses:
    IDLE conns=N ok=N open=N rss_before_kib=N rss_after_kib=N
         anon_before_kib=N anon_after_kib=N heap_before_kib=N heap_after_kib=N
         seconds=F nofile=N error=TEXT
(error only on a failure; a partial result still has its counts). Exit status
0 when all CONNS connections got their answer and were still open at step 4.
Kernel socket buffers are not in these figures (they are not the process's).
Bounded: every phase ends by --timeout (in all), whatever the proxy does.
"""

import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def proc_mem(pids):
    """(VmRSS, RssAnon, [heap] Rss) in KiB, summed over pids; None if unreadable."""
    rss = anon = heap = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
            in_heap = False
            with open(f"/proc/{pid}/smaps") as f:
                for line in f:
                    parts = line.split()
                    if not parts:
                        continue
                    if "-" in parts[0] and not parts[0].endswith(":"):
                        # a mapping's header line: "start-end perms offset dev inode [path]"
                        in_heap = len(parts) >= 6 and parts[5] == "[heap]"
                    elif in_heap and parts[0] == "Rss:":
                        heap += int(parts[1])
        except OSError:
            return None
    return rss, anon, heap


class Conn:
    __slots__ = ("sock", "state", "buf", "need")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"  # connect -> send -> head -> body -> idle | failed
        self.buf = b""
        self.need = 0


def response_complete(c):
    """Advance c's parse of the answer in c.buf; True when complete."""
    if c.state == "head":
        end = c.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = c.buf[:end].decode("latin-1").split("\r\n")
        if not head[0].startswith("HTTP/1.1 200"):
            raise ValueError(f"answer {head[0]!r}")
        length = None
        for h in head[1:]:
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise ValueError("answer without Content-Length")
        c.need = length
        c.buf = c.buf[end + 4 :]
        c.state = "body"
    if len(c.buf) > c.need:
        raise ValueError("more bytes than Content-Length")
    return len(c.buf) == c.need


def run_batch(port, n, window, request, deadline, keep):
    """Open n connections, one request each, at most window in flight; returns
    (answered connections, error text or ""). keep=False closes each after its answer."""
    sel = selectors.DefaultSelector()
    done, started, inflight, error = [], 0, 0, ""
    try:
        while len(done) < n and not error:
            while started < n and inflight < window:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    error = f"connect: {errno.errorcode.get(err, err)}"
                    break
                c = Conn(s)
                sel.register(s, selectors.EVENT_WRITE, c)
                started += 1
                inflight += 1
            if error:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                error = f"timed out with {len(done)} of {n} connections answered"
                break
            for key, _ in sel.select(min(left, 1.0)):
                c = key.data
                try:
                    if c.state == "connect":
                        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, errno.errorcode.get(err, str(err)))
                        c.sock.sendall(request)  # small: fits the empty send buffer
                        c.state = "head"
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                        continue
                    data = c.sock.recv(65536)
                    if not data:
                        raise ValueError("closed by the proxy before the answer was complete")
                    c.buf += data
                    if response_complete(c):
                        sel.unregister(c.sock)
                        c.state, c.buf = "idle", b""
                        inflight -= 1
                        if keep:
                            done.append(c)
                        else:
                            c.sock.close()
                            done.append(None)
                except (OSError, ValueError) as e:
                    error = f"connection {started}: {e}"
                    break
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return done, error


def still_open(conns):
    """How many of the idle connections the proxy has not closed (nor written to)."""
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    ready = {key.fileobj for key, _ in sel.select(0)}
    sel.close()
    return len(conns) - len(ready)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--path", default="/100")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    pids = [int(p) for p in a.pids.split(",") if p]
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    out = {"conns": a.conns, "ok": 0, "open": 0}

    # This process needs one descriptor per connection (plus a few).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.conns + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    out["nofile"] = soft
    error = ""
    if soft != resource.RLIM_INFINITY and soft < want:
        error = f"RLIMIT_NOFILE hard limit {hard} is below {want}"

    request = f"GET {a.path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_mem\r\n\r\n".encode()
    conns = []
    if not error:
        _, error = run_batch(a.port, a.window, a.window, request, deadline, keep=False)
        if error:
            error = "warm-up: " + error
    if not error:
        time.sleep(0.5)
        before = proc_mem(pids)
        if before is None:
            error = "cannot read /proc of " + a.pids
    if not error:
        conns, error = run_batch(a.port, a.conns, a.window, request, deadline, keep=True)
        out["ok"] = len(conns)
        time.sleep(max(0.0, min(a.settle, deadline - time.monotonic())))
        after = proc_mem(pids)
        out["open"] = still_open(conns)
        if after is None:
            error = error or "cannot read /proc of " + a.pids
        else:
            for i, k in enumerate(("rss", "anon", "heap")):
                out[k + "_before_kib"] = before[i]
                out[k + "_after_kib"] = after[i]
    for c in conns:
        c.sock.close()
    out["seconds"] = f"{time.monotonic() - t0:.1f}"
    line = "IDLE " + " ".join(f"{k}={v}" for k, v in out.items())
    if error:
        line += " error=" + error.replace("\n", " ")
    print(line, flush=True)
    return 0 if not error and out["open"] == a.conns else 1


if __name__ == "__main__":
    sys.exit(main())
