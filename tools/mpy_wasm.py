# Owns the host's access to the real MicroPython: runs code in the official
# WebAssembly port (tools/mpy_wasm.mjs under Node) with the project laid out as
# on a board, always under a timeout that kills Node.
#
#   from tools import mpy_wasm
#   r = mpy_wasm.run("import defs.snapshot; print('ok')")      # CompletedProcess
#   r.returncode, r.stdout, r.stderr
#   with mpy_wasm.popen(code) as p:                             # streaming
#       for line in p.stdout: ...
#   with mpy_wasm.popen(code, lines=True) as p:                 # a line channel
#       p.stdin.write("T 10\n"); p.stdout.readline()            # the script's sys.stdin
#
# Why the timeout matters: in this port an exception raised at module level
# while micropython.heap_lock() is active hangs the interpreter. Code that
# heap-locks does it inside a function with try/finally heap_unlock().
#
# Command line: python -m tools.mpy_wasm [--async] [--timeout S] [FILE | -c CODE]
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "tools", "mpy_wasm.mjs")
PACKAGE = "@micropython/micropython-webassembly-pyscript"
DEFAULT_TIMEOUT_S = 60.0


class WasmUnavailable(RuntimeError):
    """Node or the MicroPython npm package is missing."""


class WasmTimeout(subprocess.TimeoutExpired):
    """The interpreter did not finish in time; Node was killed. stdout/stderr
    hold what it printed before that."""

    def __str__(self):
        tail = (self.stderr or "").strip().splitlines()[-5:]
        return ("MicroPython (wasm) did not finish within %gs and was killed "
                "(a module-level exception under heap_lock() hangs this port)%s"
                % (self.timeout, ("; stderr: " + " | ".join(tail)) if tail else ""))


def node_exe():
    """Path of the node executable, or None."""
    return shutil.which("node")


def unavailable_reason():
    """Why the runner cannot run here, or None when it can."""
    if node_exe() is None:
        return "node is not installed"
    pkg = os.path.join(REPO_ROOT, "node_modules", *PACKAGE.split("/"), "micropython.mjs")
    if not os.path.exists(pkg):
        return "%s is not installed (run `npm ci` or `make`)" % PACKAGE
    return None


def available():
    return unavailable_reason() is None


def command(*, asyncio=False, root=None, heapsize=None, code_file="-"):
    """The argv that runs code (from code_file, default stdin) in MicroPython.
    root: a tree with firmware/, lib/, boards/ to lay out (default: this repo)."""
    reason = unavailable_reason()
    if reason:
        raise WasmUnavailable(reason)
    argv = [node_exe(), SCRIPT]
    if asyncio:
        argv.append("--async")
    if root is not None:
        argv += ["--root", os.fspath(root)]
    if heapsize is not None:
        argv += ["--heapsize", str(int(heapsize))]
    argv.append(os.fspath(code_file))
    return argv


def _kill(proc):
    """Kill Node and anything it started (it runs in its own session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def run(code, timeout_s=DEFAULT_TIMEOUT_S, asyncio=False, root=None, heapsize=None, check=False):
    """Run code (a str) in MicroPython and wait for it.

    Returns subprocess.CompletedProcess(args, returncode, stdout, stderr) with
    text output: returncode 0 when the code ran to its end, 1 with the Python
    traceback in stderr when it raised, N for SystemExit(N), 2 for a runner
    error. asyncio=True allows top-level `await` (this port has no
    asyncio.run(): write `await main()`). Raises WasmTimeout after timeout_s
    (Node killed), WasmUnavailable when Node or the npm package is missing,
    and with check=True subprocess.CalledProcessError on a non-zero status.
    """
    argv = command(asyncio=asyncio, root=root, heapsize=heapsize)
    # bytes, decoded here: text mode would turn "\r\n" into "\n"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(code.encode("utf-8"), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        raise WasmTimeout(argv, timeout_s, output=_text(out), stderr=_text(err)) from None
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    result = subprocess.CompletedProcess(argv, proc.returncode, _text(out), _text(err))
    if check:
        result.check_returncode()
    return result


def _text(data):
    return (data or b"").decode("utf-8", "replace")


class WasmProcess(subprocess.Popen):
    """A running interpreter (subprocess.Popen): read .stdout line by line.
    stderr is drained in the background into .stderr_text() so a chatty
    stderr cannot block it; a watchdog kills it after timeout_s (then
    .timed_out is True). Leaving the with-block kills it if still running.
    code_file: the code is in that file (argv names it; removed when the
    process is waited for): .stdin stays open as the script's sys.stdin."""

    def __init__(self, argv, code, timeout_s, stdout_text, code_file=None):
        super().__init__(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
        self.code_file = code_file
        if stdout_text:
            # lines end at "\n" only and come through untranslated
            self.stdout = io.TextIOWrapper(self.stdout, encoding="utf-8", errors="replace", newline="\n")
        self.timed_out = False
        self.timeout_s = timeout_s
        self._err = []
        self._err_thread = threading.Thread(target=self._drain, daemon=True)
        self._err_thread.start()
        self._watchdog = threading.Timer(timeout_s, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        if code_file is not None:
            if stdout_text:
                self.stdin = io.TextIOWrapper(self.stdin, encoding="utf-8", newline="\n", line_buffering=True)
            return
        # Node reads all of stdin before it prints anything: no deadlock here.
        try:
            self.stdin.write(code.encode("utf-8"))
            self.stdin.close()
        except BrokenPipeError:
            pass

    def _drain(self):
        try:
            for chunk in iter(lambda: self.stderr.read1(4096), b""):
                self._err.append(chunk)
        except (OSError, ValueError):
            pass

    def _expire(self):
        if self.poll() is None:
            self.timed_out = True
            _kill(self)

    def stderr_text(self):
        """stderr so far (all of it once the process has ended)."""
        if self.poll() is not None:
            self._err_thread.join(5)
        return _text(b"".join(self._err))

    def kill_tree(self):
        self._watchdog.cancel()
        _kill(self)

    def wait(self, timeout=None):
        rc = super().wait(timeout)
        self._watchdog.cancel()
        self._remove_code()
        return rc

    def _remove_code(self):
        if self.code_file is not None:
            try:
                os.remove(self.code_file)
            except FileNotFoundError:
                pass
            self.code_file = None

    def __exit__(self, *exc):
        if self.poll() is None:
            self.kill_tree()
        self._watchdog.cancel()
        super().wait()
        self._remove_code()
        self._err_thread.join(5)
        return super().__exit__(*exc)


def popen(code, timeout_s=DEFAULT_TIMEOUT_S, asyncio=False, root=None, heapsize=None, text=True, lines=False):
    """Start code in MicroPython and return a WasmProcess whose .stdout
    streams what it prints (text lines by default; text=False for bytes).
    lines=True: the code goes to Node in a temporary file and .stdin stays
    open as the script's sys.stdin (text, flushed at each newline, unless text=False):
    sys.stdin.readline() in the script waits for each line written to it, and
    what the script printed reaches .stdout before it waits; closing .stdin
    is its end of file."""
    if not lines:
        return WasmProcess(command(asyncio=asyncio, root=root, heapsize=heapsize), code, timeout_s, text)
    fd, path = tempfile.mkstemp(prefix="mpy_wasm_", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(code)
        argv = command(asyncio=asyncio, root=root, heapsize=heapsize, code_file=path)
        return WasmProcess(argv, code, timeout_s, text, code_file=path)
    except BaseException:
        os.remove(path)
        raise


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tools.mpy_wasm",
                                 description="Run code in the real MicroPython (WebAssembly) "
                                             "with the project laid out as on a board.")
    ap.add_argument("file", nargs="?", default="-", help="code file (default: stdin)")
    ap.add_argument("-c", dest="code", help="code to run")
    ap.add_argument("--async", dest="use_async", action="store_true",
                    help="allow top-level await (runPythonAsync)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds (default 60)")
    args = ap.parse_args(argv)
    try:
        if args.code is not None:
            code = args.code
        elif args.file == "-":
            code = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                code = f.read()
        with popen(code, timeout_s=args.timeout, asyncio=args.use_async, text=False) as p:
            out = sys.stdout.buffer
            for chunk in iter(lambda: p.stdout.read1(65536), b""):
                out.write(chunk)
                out.flush()
            rc = p.wait()
            sys.stderr.write(p.stderr_text())
            if p.timed_out:
                print("mpy_wasm: timed out after %gs, interpreter killed" % args.timeout, file=sys.stderr)
                return 124
            return rc
    except (OSError, WasmUnavailable) as e:
        print("mpy_wasm: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
