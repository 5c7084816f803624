// Owns running code in the real MicroPython (the official WebAssembly port,
// npm @micropython/micropython-webassembly-pyscript) laid out like a board:
//   firmware/**.py -> /      (/boot.py, /main.py, /app/...)
//   lib/**.py      -> /lib/  (/lib/bms/..., /lib/proto/...)
//   boards/*.py    -> /boards/
//   tools/simworld.py -> /simworld.py (the bench world, written for both runtimes)
// sys.path is ['', '.frozen', '/lib', '/boards'] and the cwd is '/'. ('.frozen'
// stays: asyncio and the other bundled modules are frozen in this port.)
//
// Usage: node tools/mpy_wasm.mjs [--async] [--root DIR] [--heapsize BYTES]
//                                [-c CODE | FILE | -]
// The code comes from -c, a file, or stdin ("-" or nothing). Its stdout and
// stderr go through byte for byte as they are produced. With the code from -c
// or a file, the runner's stdin is the script's sys.stdin, read as the bytes
// arrive (a blocking read: sys.stdin.readline() waits for the next line, so a
// test can drive a running script line by line; what the script printed is
// flushed before each wait); with the code from stdin, sys.stdin is at its
// end. Exit status: 0 when the code ran to its end, 1 with the Python
// traceback on stderr when it raised, N for SystemExit(N), 2 for a usage or
// runner error.
// --async runs the code with runPythonAsync: top-level `await` is allowed
// (this port has no asyncio.run(); write `await main()`).
// A module-level exception while micropython.heap_lock() is active hangs this
// interpreter; the Python side (tools/mpy_wasm.py) always runs it with a timeout.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SYS_PATH = ["", ".frozen", "/lib", "/boards"];

function die(msg) {
  writeAll(2, Buffer.from("mpy_wasm: " + msg + "\n"));
  process.exit(2);
}

// Synchronous write of a whole buffer; a pipe may be non-blocking (EAGAIN).
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
}

// The script's stdin: one byte per call (null at the end), read from fd 0 in
// chunks as they arrive; before it blocks it flushes the interpreter's output
// (the other side may be waiting for it). Emscripten's default Node stdin
// fails (OSError 29 in the script) on a pipe whose next line is not there yet.
class In {
  constructor(fd, flush) {
    this.fd = fd;
    this.flush = flush;
    this.buf = Buffer.alloc(4096);
    this.i = 0;
    this.n = 0;
    this.eof = false;
  }
  byte() {
    while (this.i === this.n) {
      if (this.eof) return null;
      this.flush();
      let k;
      try {
        k = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if (e.code === "EAGAIN") {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
          continue;
        }
        if (e.code === "EOF") k = 0;
        else throw e;
      }
      this.i = 0;
      this.n = k;
      if (k === 0) this.eof = true;
    }
    return this.buf[this.i++];
  }
}

// Collects the interpreter's bytes; flushed at each newline and at the end.
class Out {
  constructor(fd) {
    this.fd = fd;
    this.buf = Buffer.alloc(4096);
    this.n = 0;
  }
  byte(c) {
    if (this.n === this.buf.length) this.flush();
    this.buf[this.n++] = c;
    if (c === 10) this.flush();
  }
  flush() {
    if (this.n) {
      writeAll(this.fd, this.buf.subarray(0, this.n));
      this.n = 0;
    }
  }
}

function parseArgs(argv) {
  const opt = { async: false, root: path.resolve(HERE, ".."), heapsize: undefined, code: undefined, file: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--async") opt.async = true;
    else if (a === "--root") opt.root = path.resolve(argv[++i] ?? die("--root needs a directory"));
    else if (a === "--heapsize") opt.heapsize = parseInt(argv[++i] ?? die("--heapsize needs a number"), 10);
    else if (a === "-c") opt.code = argv[++i] ?? die("-c needs code");
    else if (a === "-h" || a === "--help") {
      writeAll(1, Buffer.from("usage: node tools/mpy_wasm.mjs [--async] [--root DIR] [--heapsize BYTES] [-c CODE | FILE | -]\n"));
      process.exit(0);
    } else if (a === "-" || !a.startsWith("-")) {
      if (opt.file !== undefined) die("only one code file");
      opt.file = a;
    } else die("unknown option " + a);
  }
  return opt;
}

// All .py files under dir (recursive), relative paths with '/', sorted;
// __pycache__ and dot-directories are skipped.
function pyFiles(dir, recursive) {
  const out = [];
  const walk = (rel) => {
    const abs = path.join(dir, rel);
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const r = rel ? rel + "/" + e.name : e.name;
      if (e.isDirectory()) {
        if (recursive && e.name !== "__pycache__" && !e.name.startsWith(".")) walk(r);
      } else if (e.isFile() && e.name.endsWith(".py")) out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk("");
  return out.sort();
}

function mkdirs(FS, p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.mkdir(cur);
    } catch (e) {
      // exists already
    }
  }
}

function install(FS, root) {
  const layout = [
    [path.join(root, "firmware"), "/", true],
    [path.join(root, "lib"), "/lib/", true],
    [path.join(root, "boards"), "/boards/", false],
  ];
  mkdirs(FS, "/lib");
  mkdirs(FS, "/boards");
  for (const [src, dest, recursive] of layout) {
    for (const rel of pyFiles(src, recursive)) {
      const target = dest + rel;
      mkdirs(FS, path.posix.dirname(target));
      FS.writeFile(target, fs.readFileSync(path.join(src, rel)));
    }
  }
  const world = path.join(root, "tools", "simworld.py");
  if (fs.existsSync(world)) FS.writeFile("/simworld.py", fs.readFileSync(world));
}

// Exit status and stderr text for a PythonError: a traceback and 1, or what
// SystemExit carries (its code; a non-integer argument is printed, status 1).
function pythonExit(err) {
  const msg = err.message || "";
  if (err.type !== "SystemExit") return [1, msg.endsWith("\n") ? msg : msg + "\n"];
  const m = /SystemExit: ?(.*)\n*$/.exec(msg);
  const arg = m ? m[1].trim() : "";
  if (arg === "" || arg === "None") return [0, ""];
  if (/^-?\d+$/.test(arg)) return [parseInt(arg, 10) & 0xff, ""];
  return [1, arg + "\n"];
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  let code;
  try {
    if (opt.code !== undefined) code = opt.code;
    else if (opt.file === undefined || opt.file === "-") code = fs.readFileSync(0, "utf8");
    else code = fs.readFileSync(opt.file, "utf8");
  } catch (e) {
    die("cannot read code: " + e.message);
  }

  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
  } catch (e) {
    die("@micropython/micropython-webassembly-pyscript is not installed (run `npm ci` or `make`): " + e.message);
  }

  const out = new Out(1);
  const err = new Out(2);
  const finish = (status) => {
    out.flush();
    err.flush();
    process.exit(status);
  };
  const input = new In(0, () => { out.flush(); err.flush(); });
  const mpOpts = {
    linebuffer: false,
    stdin: () => input.byte(),
    stdout: (bytes) => { for (const c of bytes) out.byte(c); },
    stderr: (bytes) => { for (const c of bytes) err.byte(c); },
  };
  if (opt.heapsize) mpOpts.heapsize = opt.heapsize;
  const mp = await loadMicroPython(mpOpts);

  try {
    install(mp.FS, opt.root);
    mp.runPython(
      "def _mpy_wasm_setup():\n" +
      "    import sys, os\n" +
      "    sys.path[:] = " + JSON.stringify(SYS_PATH) + "\n" +
      "    os.chdir('/')\n" +
      "_mpy_wasm_setup()\n" +
      "del _mpy_wasm_setup\n"
    );
  } catch (e) {
    out.flush();
    die("setting up the board layout failed: " + (e.message || e));
  }

  try {
    if (opt.async) await mp.runPythonAsync(code);
    else mp.runPython(code);
  } catch (e) {
    out.flush();
    if (e && e.name === "PythonError") {
      const [status, text] = pythonExit(e);
      err.flush();
      if (text) writeAll(2, Buffer.from(text));
      finish(status);
    }
    err.flush();
    writeAll(2, Buffer.from("mpy_wasm: interpreter error: " + ((e && e.message) || e) + "\n"));
    finish(2);
  }
  finish(0);
}

main().catch((e) => die("runner error: " + ((e && e.stack) || e)));
