#!/usr/bin/python3
"""clang-tidy over pixpool's sources, skipping files whose clean result is cached.

Usage: clang_tidy_cached.py SOURCE_DIR BUILD_DIR  (called by test_clang_tidy.sh)

Runs `clang-tidy -p BUILD_DIR -quiet FILE` (the checks and WarningsAsErrors
of .clang-tidy) on every file of BUILD_DIR/compile_commands.json under
SOURCE_DIR/(core|filters|pipeline|service|bench|tests)/, -j $(nproc), and
prints what test_clang_tidy.sh always printed: the findings as
`file:line:col: warning|error: ...` and a failure count, or
`clang-tidy: clean (N files, M cached)`.

The cache works like ccache's direct mode, but stores only verdicts: a file
whose clang-tidy run was clean leaves an empty-ish marker named after its key
in $PIXPOOL_CLANG_TIDY_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/pixpool/
clang-tidy, outside the clone so every fresh CI clone on this machine shares
it; `off` disables it). A file with a marker for its current key is not run
again. A file with findings is never cached, so a failure shows on every run.
Markers not used for 30 days are deleted.

Why the key is exact: clang-tidy's verdict on a translation unit is a
function of
  - the clang-tidy build: its --version text, plus path, size, mtime and
    inode of the executable and of every shared library it loads (a Debian
    revision update keeps the --version text but replaces the files);
  - its configuration: the content of every .clang-tidy in the source file's
    folder and the folders above it (the nearest applies; one may be added),
    and this script itself (how clang-tidy is called);
  - the compile command(s) of the file in compile_commands.json, with their
    directory (clang-tidy runs every command listed for a file; the
    HeaderFilterRegex sees absolute paths, so the paths count too), and the
    environment variables that change what the compiler driver does;
  - the text clang-tidy parses: the source file and every file it includes,
    system headers too, so that a package upgrade invalidates.
The last list comes from preprocessing the file again on every run with
-M (dependencies only, to stdout; -o and -MD/-MF are dropped so nothing is
written): once with the TU's own compiler, and once with the clang++ that
sits next to clang-tidy, because clang-tidy is a clang frontend and clang's
headers and #if branches differ from gcc's (clang also pulls tbb.h into
server.cpp, gcc does not). Recomputing the list each run also catches a new
header that would shadow an old one on the include path. Each listed file is
hashed by content (sha256), with its path. The key is the sha256 of all of it.
A clean verdict is stored only if the key computed again after clang-tidy
ran is unchanged, so a file edited during the run cannot store a stale key.
If a key cannot be computed (the -M pass fails), the file is run, uncached.
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

PRUNE_AFTER_S = 30 * 24 * 3600
FINDING = re.compile(r'^/.*: (warning|error): ')
# Variables the clang driver reads that change what it parses without a
# change to a file or the command line: include paths, and options added to
# every command.
ENV_VARS = ('CPATH', 'C_INCLUDE_PATH', 'CPLUS_INCLUDE_PATH', 'OBJC_INCLUDE_PATH',
            'CCC_OVERRIDE_OPTIONS')


def sha256_bytes(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b'\0')
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path):
    st = os.stat(path)
    return f'{os.path.realpath(path)} {st.st_size} {st.st_mtime_ns} {st.st_ino}'


def tool_identity(clang_tidy):
    """The clang-tidy build, as text: --version and its files' identities."""
    parts = [subprocess.run([clang_tidy, '--version'], capture_output=True,
                            text=True, check=True).stdout,
             file_identity(clang_tidy)]
    if shutil.which('ldd'):
        ldd = subprocess.run(['ldd', os.path.realpath(clang_tidy)],
                             capture_output=True, text=True).stdout
        for lib in sorted(re.findall(r'=> (/\S+)', ldd)):
            parts.append(file_identity(lib))
    return '\n'.join(parts)


def config_identity(folders):
    """Every .clang-tidy in these folders and the folders above them."""
    found = set()
    for d in folders:
        while True:
            candidate = os.path.join(d, '.clang-tidy')
            if os.path.isfile(candidate):
                found.add(candidate)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    return '\n'.join(f'{p} {sha256_file(p)}' for p in sorted(found))


def command_args(entry):
    if 'arguments' in entry:
        return list(entry['arguments'])
    return shlex.split(entry['command'])


def deps_command(args, compiler):
    """The compile command turned into a -M run that writes only to stdout."""
    out = [compiler]
    skip = False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ('-o', '-MF', '-MT', '-MQ'):
            skip = True
        elif a in ('-c', '-M', '-MM', '-MD', '-MMD', '-MP', '-MG') or a.startswith(('-o', '-MF', '-MT', '-MQ')):
            pass
        else:
            out.append(a)
    # -w: a warning (an option gcc knows and clang does not, under -Werror)
    # must not fail a pass that only lists files.
    return out + ['-w', '-M', '-MT', 'deps', '-MF', '-']


def parse_make_deps(text):
    """The prerequisites of a `deps: a b \\<newline> c` make rule."""
    text = text.replace('\\\n', ' ')
    if not text.startswith('deps:'):
        raise ValueError(f'not a -M rule: {text[:80]!r}')
    names, cur, i = [], '', len('deps:')
    while i < len(text):
        c = text[i]
        if c == '\\' and i + 1 < len(text) and text[i + 1] in ' #\\':
            cur += text[i + 1]
            i += 2
            continue
        if c == '$' and text[i + 1:i + 2] == '$':
            cur += '$'
            i += 2
            continue
        if c.isspace():
            if cur:
                names.append(cur)
            cur = ''
        else:
            cur += c
        i += 1
    if cur:
        names.append(cur)
    return names


class Keys:
    def __init__(self, clang_tidy, script_text):
        self.digests = {}  # realpath -> sha256, for this pass over the files
        self.lock = threading.Lock()
        self.configs = {}
        clang = os.path.join(os.path.dirname(os.path.realpath(clang_tidy)), 'clang++')
        self.clang = clang if os.access(clang, os.X_OK) else None
        env = '\n'.join(f'{v}={os.environ[v]}' for v in ENV_VARS if v in os.environ)
        self.base = sha256_bytes('pixpool clang-tidy cache 1', script_text,
                                 tool_identity(clang_tidy),
                                 f'clang for -M: {self.clang}', env)

    def digest(self, path, fresh):
        real = os.path.realpath(path)
        if not fresh:
            with self.lock:
                if real in self.digests:
                    return self.digests[real]
        d = sha256_file(real)
        with self.lock:
            self.digests[real] = d
        return d

    def key(self, file, entries, fresh=False):
        """The file's key, or None if its includes cannot be listed."""
        parts = [self.base, file]
        deps = set()
        for entry in entries:
            parts.append(json.dumps(entry, sort_keys=True))
            args = command_args(entry)
            for compiler in filter(None, (args[0], self.clang)):
                p = subprocess.run(deps_command(args, compiler), cwd=entry['directory'],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    return None
                try:
                    listed = parse_make_deps(p.stdout)
                except ValueError:
                    return None
                deps.update(os.path.join(entry['directory'], d) for d in listed)
        deps.add(file)
        folders = frozenset(os.path.dirname(d) for d in deps)
        with self.lock:
            config = self.configs.get(folders)
        if config is None or fresh:
            config = config_identity(folders)
            with self.lock:
                self.configs[folders] = config
        parts.append(config)
        try:
            parts += [f'{d} {self.digest(d, fresh)}' for d in sorted(deps)]
        except OSError:
            return None
        return sha256_bytes(*parts)


class Cache:
    def __init__(self, where):
        self.dir = where
        os.makedirs(where, exist_ok=True)

    def marker(self, key):
        return os.path.join(self.dir, key[:2], key[2:])

    def hit(self, key):
        m = self.marker(key)
        try:
            os.utime(m)  # used now: not pruned for another 30 days
            return True
        except OSError:
            return False

    def store(self, key, file):
        m = self.marker(key)
        os.makedirs(os.path.dirname(m), exist_ok=True)
        tmp = f'{m}.{os.getpid()}.{threading.get_ident()}.tmp'
        with open(tmp, 'w') as f:
            f.write(f'clean: {file}\n')
        os.replace(tmp, m)

    def prune(self):
        limit = time.time() - PRUNE_AFTER_S
        for sub in os.scandir(self.dir):
            if not sub.is_dir():
                continue
            for e in os.scandir(sub.path):
                try:
                    if e.stat().st_mtime < limit:
                        os.unlink(e.path)
                except OSError:
                    pass


def main():
    src, build = sys.argv[1], sys.argv[2]
    clang_tidy = shutil.which('clang-tidy') or shutil.which('clang-tidy-14')
    if not clang_tidy:
        print('clang-tidy: clang-tidy not found; scripts/setup test installs it', file=sys.stderr)
        return 1
    # The files run-clang-tidy chose: third-party headers are SYSTEM includes
    # and never checked; generated sources live in the build folder.
    wanted = re.compile(f'^{re.escape(os.path.realpath(src))}/(core|filters|pipeline|service|bench|tests)/')

    def load_commands():
        """{file: [its compile_commands.json entries]} for the wanted files."""
        with open(os.path.join(build, 'compile_commands.json')) as f:
            database = json.load(f)
        by_file = {}
        for entry in database:
            name = entry['file']
            if not os.path.isabs(name):
                name = os.path.normpath(os.path.join(entry['directory'], name))
            if wanted.search(name):
                by_file.setdefault(name, []).append(entry)
        return by_file

    by_file = load_commands()

    setting = os.environ.get('PIXPOOL_CLANG_TIDY_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
        'pixpool', 'clang-tidy')
    cache = None
    if setting != 'off':
        try:
            cache = Cache(setting)
        except OSError as e:
            print(f'clang-tidy: no cache ({e}); checking every file', file=sys.stderr)
    with open(__file__) as f:
        keys = Keys(clang_tidy, f.read()) if cache else None

    def check(file):
        """(cached, clean, output) for one file."""
        key = keys.key(file, by_file[file]) if keys else None
        if key and cache.hit(key):
            return True, True, ''
        p = subprocess.run([clang_tidy, f'-p={build}', '-quiet', file],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = p.stdout
        if p.returncode < 0:
            output += f'{file}: terminated by signal {-p.returncode}\n'
        clean = p.returncode == 0 and not any(FINDING.match(l) for l in output.splitlines())
        if clean and key:
            # Same key from the inputs as they are now, and the same command
            # list: nothing changed under clang-tidy while it ran.
            entries = load_commands().get(file)
            if entries == by_file[file] and keys.key(file, entries, fresh=True) == key:
                try:
                    cache.store(key, file)
                except OSError as e:
                    print(f'clang-tidy: cannot store in the cache: {e}', file=sys.stderr)
        return False, clean, output

    jobs = len(os.sched_getaffinity(0))  # what nproc says
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(check, sorted(by_file)))
    if cache:
        cache.prune()

    log = ''.join(r[2] for r in results)
    findings = sorted(set(l for l in log.splitlines() if FINDING.match(l)))
    if findings or not all(r[1] for r in results):
        if findings:
            print('\n'.join(findings))
        else:
            print('\n'.join(log.splitlines()[-50:]))
        print(f'clang-tidy: {len(findings)} finding(s); fix them or add NOLINT(check) with a reason')
        return 1
    cached = sum(1 for r in results if r[0])
    print(f'clang-tidy: clean ({len(results)} files, {cached} cached)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
