#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Checks that every program the project's scripts call is there on a minimal
# Debian 12 (debootstrap --variant=minbase, the debian:bookworm image) once
# scripts/deps.sh has run.  CI runs it after ./test.sh.
#
# 1. It finds the commands called by run.sh, test.sh, scripts/*, tests/*.sh,
#    bench/run, .ci/run, the shell lines C code runs (run("...") and argv
#    arrays in any .c file that starts programs: the soft-key unit test) and
#    meson's find_program(), and compares them with COMMANDS below.  Shell is parsed by shfmt, bench/run
#    by Python's ast.  Builtins, functions (those of the script itself, of
#    the scripts it sources and, in a sourced one, of those that source it),
#    words from variables ("$KEYMUXD") and paths in the tree (build/...) are
#    not commands; behind timeout, setpriv, env, a script's "$@"-runner (kmx_bg,
#    assert_exit ...) and in trap/sh -c strings the wrapped command is.
#    A command called but not listed fails, and so does one listed but no
#    longer called.
# 2. Each listed command must resolve (command -v, in Debian's directories
#    /usr/sbin:/usr/bin:/sbin:/bin) to a file that dpkg says belongs to a
#    package scripts/deps.sh installs, one of their dependencies, or a package
#    a minbase system has (Essential, or Priority: required).  Symlinks are
#    followed (alternatives, python3 -> python3.11), and /bin and /usr/bin are
#    the same directory (usrmerge) whichever name dpkg knows.
#
# usage: scripts/check-deps.sh [-v] [--calls] [--root DIR]
#        scripts/check-deps.sh --self-test
#   -v          print where each command comes from
#   --calls     print each call found (command, file:line) and stop
#   --root DIR  check the tree in DIR (default: this one)
#   --self-test prove that the check fails for a command that is not listed
#               (also where another test has a function of its name), a
#               listed command from a package deps.sh does not install, a
#               command that is not installed, and a stale list entry
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

# Every command the scripts call.  Which package provides it is found, not
# written here: a minbase system has the first group; scripts/deps.sh
# installs the packages of the second.
COMMANDS=(
	# Essential or Priority: required (bash, dash, coreutils, util-linux, grep,
	# sed, mawk, diffutils, findutils, tar, dpkg, apt)
	/bin/bash /bin/sh /sbin/ldconfig apt-get awk base64 basename bash cat chmod chown cmp cp cut date dd
	dirname dpkg dpkg-query find grep head id ldd ln ls mkdir mkfifo mktemp mv od readlink
	mount rm sed seq setpriv setsid sha256sum sleep sort stat tail tar timeout touch tr unshare wc xargs
	# scripts/deps.sh
	/usr/bin/python3 asn1Parser busctl dbus-daemon dbus-monitor dbus-send eatmydata gdbus gjs objdump
	certtool certutil gcc gnutls-cli gnutls-serv modutil p11tool pkcs11-tool
	gnome-keyring-daemon gpg gpg-agent gpg-connect-agent gpgconf meson ninja openssl opensc-tool p11-kit pcscd
	pkg-config secret-tool shfmt softhsm2-util ssh ssh-add ssh-agent ssh-keygen /usr/sbin/sshd swtpm swtpm_ioctl
	tpm2_dictionarylockout tpm2_flushcontext tpm2_getcap tpm2_load tpm2_readpublic xxd
	go-md2man man systemd-analyze
	Xvfb identify import /usr/libexec/at-spi-bus-launcher
	xclip
)
# Called only when installed (bench/run --profile), or installed by the
# script that calls it (.ci/run installs clang and libFuzzer's runtime);
# not checked.
OPTIONAL=(perf clang)

debian_path=/usr/sbin:/usr/bin:/sbin:/bin
verbose=0
calls_only=0
root=$top
self_test=0
while [ $# -gt 0 ]; do
	case $1 in
	-v) verbose=1 ;;
	--calls) calls_only=1 ;;
	--root) root=$(cd "$2" && pwd); shift ;;
	--self-test) self_test=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [-v] [--calls] [--root DIR] | --self-test" >&2; exit 2 ;;
	esac
	shift
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- the self-test: break a copy of the tree five ways, each must fail ----
if [ $self_test = 1 ]; then
	copy_tree() {
		rm -rf "$tmp/tree"
		mkdir "$tmp/tree"
		tar -C "$top" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tmp/tree" -xf -
	}
	expect_failure() { # WHAT TEXT: the check of the copy fails saying TEXT
		local status=0
		"$tmp/tree/scripts/check-deps.sh" --root "$tmp/tree" >"$tmp/out" 2>&1 || status=$?
		if [ $status = 0 ] || ! grep -qF -- "$2" "$tmp/out"; then
			echo "check-deps self-test: $1: expected a failure saying '$2', got (exit $status):" >&2
			cat "$tmp/out" >&2
			exit 1
		fi
		echo "check-deps self-test: $1: fails: $(grep -F -- "$2" "$tmp/out" | head -n1)"
	}
	list_also() { # add a command to the copy's COMMANDS
		sed -i "0,/^COMMANDS=(/s//COMMANDS=($1 /" "$tmp/tree/scripts/check-deps.sh"
	}
	copy_tree
	"$tmp/tree/scripts/check-deps.sh" --root "$tmp/tree" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out" >&2; echo "check-deps self-test: the unchanged tree fails" >&2; exit 1; }
	# cppcheck is a developer's tool: not on minbase, not installed by deps.sh
	# nor pulled in by anything it installs (procps, the obvious example, is:
	# gcr brings it through dconf)
	printf 'cppcheck --version >/dev/null || true\n' >>"$tmp/tree/tests/test-daemon.sh"
	expect_failure "a test calls cppcheck" "'cppcheck' is called but not listed"
	list_also cppcheck
	if PATH=$debian_path command -v cppcheck >/dev/null; then
		expect_failure "cppcheck listed, installed by hand" "is from cppcheck, which scripts/deps.sh does not install"
	else
		expect_failure "cppcheck listed, not installed" "cppcheck: not installed"
	fi
	copy_tree
	# shellcheck disable=SC2016 # the line is shell for the copy, not expanded here
	printf 'x=$(timeout 5 kmx-no-such-tool --version)\n' >>"$tmp/tree/tests/harness.sh"
	list_also kmx-no-such-tool
	expect_failure "the harness calls a program that is not installed, behind timeout" \
		"kmx-no-such-tool: not installed"
	copy_tree
	# a function hides a program of its name only where it is defined
	printf 'cppcheck() { :; }\n' >>"$tmp/tree/tests/test-corrupt.sh"
	printf 'cppcheck --version >/dev/null || true\n' >>"$tmp/tree/tests/test-daemon.sh"
	expect_failure "a test calls cppcheck, another defines a function cppcheck" \
		"tests/test-daemon.sh:$(wc -l <"$tmp/tree/tests/test-daemon.sh"): 'cppcheck' is called but not listed"
	copy_tree
	list_also pkill
	expect_failure "a command listed that no script calls" "'pkill' is listed but no script calls it"
	echo "check-deps self-test: passed"
	exit 0
fi

shfmt --version >/dev/null 2>&1 || { echo "check-deps: shfmt is missing: run scripts/deps.sh" >&2; exit 1; }
cd "$root"

# ---- 1. the commands the scripts call ----
# the scripts, shell or Python by their #! line
shell_files=() py_files=()
for f in run.sh test.sh .ci/run bench/run scripts/* tests/*.sh; do
	[ -f "$f" ] || continue
	case $(head -n1 "$f") in
	'#!'*python*) py_files+=("$f") ;;
	*) shell_files+=("$f") ;;
	esac
done
# C files (those that start programs count) and meson files, outside build dirs
c_files=() meson_files=()
while IFS= read -r -d '' f; do
	case $f in *.c) c_files+=("$f") ;; *) meson_files+=("$f") ;; esac
done < <(find . \( -path ./.git -o -path './build*' \) -prune -o \
	\( -name '*.c' -o -name meson.build \) -type f -printf '%P\0' | sort -z)

read -r -d '' scan_py <<'PY' || true
import ast, json, re, subprocess, sys

builtins = set(open(sys.argv[1]).read().split())
out = open(sys.argv[2], "w")
shell_files, c_files, py_files, meson_files = ([f for f in a.split("\n") if f] for a in sys.argv[3:7])
calls = []  # (command, where)

def parse_many(jobs):
    """shfmt's syntax trees of [(code, where, dialect)], all parsed at once;
    exits 1 on a syntax error"""
    procs = []
    for code, where, dialect in jobs:
        p = subprocess.Popen(["shfmt", "-ln", dialect, "--to-json"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write(code)
        p.stdin.close()
        procs.append(p)
    trees = []
    for p, (code, where, dialect) in zip(procs, jobs):
        out, err = p.stdout.read(), p.stderr.read()
        if p.wait() != 0:
            sys.exit(f"check-deps: {where}: shfmt cannot parse it: {err.strip()}")
        trees.append(json.loads(out))
    return trees

def parse_shell(code, where, dialect):
    return parse_many([(code, where, dialect)])[0]

def static(word):
    """the text of a word without expansions, or None"""
    s = ""
    for part in word.get("Parts", []):
        t = part["Type"]
        if t in ("Lit", "SglQuoted"):
            s += part["Value"]
        elif t == "DblQuoted":
            inner = static(part)
            if inner is None:
                return None
            s += inner
        else:
            return None
    return s

def bare_param(word):
    parts = word.get("Parts", [])
    return len(parts) == 1 and parts[0]["Type"] == "ParamExp"

def is_all_args(word):
    parts = word.get("Parts", [])
    if len(parts) == 1 and parts[0]["Type"] == "DblQuoted":
        parts = parts[0].get("Parts", [])
    return len(parts) == 1 and parts[0]["Type"] == "ParamExp" and parts[0]["Param"]["Value"] in "@*"

def walk(node, fn):
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            walk(v, fn)

# wrappers: options that take a value, and how many operands come before the command
WRAPPERS = {
    "timeout": ({"-s", "--signal", "-k", "--kill-after"}, 1),
    "setpriv": ({"--reuid", "--regid", "--ruid", "--rgid", "--euid", "--egid", "--groups",
                 "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits",
                 "--pdeathsig", "--selinux-label", "--apparmor-profile"}, 0),
    "env": ({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}, 0),
    "nice": ({"-n", "--adjustment"}, 0),
    "nohup": (set(), 0), "eatmydata": (set(), 0), "stdbuf": (set(), 0),
    "sudo": ({"-u", "--user", "-g", "--group", "-C", "-D", "--chdir"}, 0),
    "xargs": ({"-I", "-n", "-P", "-d", "-a", "-E", "-L", "-s"}, 0),
    "unshare": ({"--propagation", "--setgroups", "--map-user", "--map-group", "-S", "--setuid",
                 "-G", "--setgid", "-R", "--root", "-w", "--wd"}, 0),
    "exec": ({"-a"}, 0), "command": (set(), 0), "builtin": (set(), 0), "time": ({"-f", "-o"}, 0),
}

jobs = []  # (code, where, dialect), (file, line offset)
for f in shell_files:
    src = open(f).read()
    jobs.append(((src, f, "bash"), (f, 0)))
    m = re.match(r"#!\s*(\S+)(?:\s+(\S+))?", src)
    if m:
        calls.append((m.group(1), f"{f}:1"))
        if m.group(1).endswith("/env") and m.group(2):
            calls.append((m.group(2), f"{f}:1"))

# the shell lines of the C tests: run("...", ...), run_ok("..."), system(),
# g_spawn_command_line_*(), and the programs of argv arrays
C_RUNNERS = r"\b(?:run|run_ok|system|popen|g_spawn_command_line_sync|g_spawn_command_line_async)\s*\(\s*"
C_STR = r'"(?:[^"\\\n]|\\.)*"'
def c_unescape(s):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)
for f in c_files:
    src = open(f).read()
    if not re.search(r"g_spawn|exec[lv]p?e?\s*\(|\bsystem\s*\(|\bpopen\s*\(|posix_spawn", src):
        continue
    for m in re.finditer(C_RUNNERS + r"((?:" + C_STR + r"\s*)+)", src):
        line = src.count("\n", 0, m.start()) + 1
        code = "".join(c_unescape(s[1:-1]) for s in re.findall(C_STR, m.group(1)))
        code = re.sub(r"%%", "%", re.sub(r"%[-+ #0]*[0-9*]*(?:\.[0-9*]+)?[hlLqjzt]*[diouxXeEfgGcsp]",
                                           "$KMX_FMT", code))
        jobs.append(((code, f"{f}:{line}", "posix"), (f, line - 1)))
    for m in re.finditer(r"\bchar\s*\*\s*\w*argv\w*\s*\[\s*\w*\s*\]\s*=\s*\{\s*(" + C_STR + ")", src):
        calls.append((c_unescape(m.group(1)[1:-1]), f"{f}:{src.count(chr(10), 0, m.start()) + 1}"))

trees = [(tree, f, job[2], offset)  # (tree, file, dialect, line offset)
         for tree, (job, (f, offset)) in zip(parse_many([j for j, _ in jobs]), jobs)]

# the functions each file defines, and those that run their arguments ("$@")
defined, running = {}, {}
def function_finder(f):
    def find(node):
        if node.get("Type") == "FuncDecl":
            name = node["Name"]["Value"]
            defined.setdefault(f, set()).add(name)
            def runs_args(n):
                if n.get("Type") == "CallExpr" and n.get("Args") and is_all_args(n["Args"][0]):
                    running.setdefault(f, set()).add(name)
            walk(node["Body"], runs_args)
    return find
for tree, f, *_ in trees:
    walk(tree, function_finder(f))

# the scripts each shell file sources (". DIR/harness.sh", "source x.sh"),
# found by the file name its word ends in, in its own directory first
def sourced_by(f, tree):
    found = []
    def visit(node):
        if node.get("Type") != "CallExpr" or len(node.get("Args") or []) < 2:
            return
        if static(node["Args"][0]) not in (".", "source"):
            return
        parts = node["Args"][1].get("Parts", [])
        if len(parts) == 1 and parts[0]["Type"] == "DblQuoted":
            parts = parts[0].get("Parts", [])
        if not parts or parts[-1]["Type"] not in ("Lit", "SglQuoted"):
            return
        name = parts[-1]["Value"].rsplit("/", 1)[-1]
        same = [g for g in shell_files if g.rsplit("/", 1)[-1] == name]
        here = [g for g in same if g.rsplit("/", 1)[:-1] == f.rsplit("/", 1)[:-1]]
        found.extend(here or same)
    walk(tree, visit)
    return found
sources = {f: sourced_by(f, tree) for tree, f, dialect, _ in trees if dialect == "bash"}

# a function is known in the file that defines it and in the files that
# source that file, directly or through another, so that a function of one
# test named like a program does not hide that program in another.  A file
# that is sourced (tpm-common.sh, after harness.sh) runs among the functions
# of the files that source it, so it knows theirs too.
def closure(f, edges):
    seen, todo = set(), [f]
    while todo:
        g = todo.pop()
        if g not in seen:
            seen.add(g)
            todo += edges.get(g, [])
    return seen
sourced_from = {}
for g, gs in sources.items():
    for h in gs:
        sourced_from.setdefault(h, []).append(g)
def in_scope(f):
    files = set().union(*(closure(g, sources) for g in closure(f, sourced_from)))
    functions = set().union(*(defined.get(g, set()) for g in files))
    runners = set().union(*(running.get(g, set()) for g in files))
    return functions, runners

pending = list(trees)
def call_visitor(f, dialect, offset):
    functions, runners = in_scope(f)
    def where(word):
        return f"{f}:{word['Pos']['Line'] + offset}" if "Pos" in word else f
    def code_arg(word):
        code = static(word)
        if code:
            pending.append((parse_shell(code, where(word), dialect), f, dialect,
                            word["Pos"]["Line"] - 1 + offset))
    def visit(node):
        if node.get("Type") != "CallExpr" or not node.get("Args"):
            return
        args = node["Args"]
        i = 0
        while i < len(args):
            w = static(args[i])
            if w is None:
                # an unquoted $var may expand to nothing ($sudo apt-get)
                if bare_param(args[i]) and not is_all_args(args[i]):
                    i += 1
                    continue
                return
            if w in functions:
                if w not in runners:
                    return
                i += 1  # kmx_bg CMD, assert_exit CODE CMD: skip codes and options
                while i < len(args) and re.fullmatch(r"-.*|[0-9]+", static(args[i]) or "x"):
                    i += 1
                continue
            if w in ("trap", "eval"):
                if len(args) > i + 1 and static(args[i + 1]) != "-":
                    code_arg(args[i + 1])
                return
            if w == "command" and any(static(a) in ("-v", "-V") for a in args[i + 1:i + 2]):
                return
            if w in builtins and w not in WRAPPERS:
                return
            if "/" in w and not w.startswith("/"):
                return  # a file of the tree: build/..., scripts/deps.sh
            if w not in builtins:
                calls.append((w, where(args[i])))
            name = w.rsplit("/", 1)[-1]
            if name in ("sh", "bash", "dash"):
                for j in range(i + 1, len(args) - 1):
                    if static(args[j]) == "-c":
                        code_arg(args[j + 1])
                return
            if name not in WRAPPERS:
                return
            takes_value, operands = WRAPPERS[name]
            i += 1
            while i < len(args):
                a = static(args[i])
                if a is None or not a.startswith("-") or a == "-":
                    if a is not None and name == "env" and re.fullmatch(r"\w+=.*", a):
                        i += 1
                        continue
                    break
                i += 1
                if a == "--":
                    break
                if a in takes_value:
                    i += 1
            i += operands
    return visit

while pending:
    tree, f, dialect, offset = pending.pop(0)
    walk(tree, call_visitor(f, dialect, offset))

# Python: argv lists given to a call, and shutil.which("name")
for f in py_files:
    src = open(f).read()
    m = re.match(r"#!\s*(\S+)(?:\s+(\S+))?", src)
    if m:
        calls.append((m.group(1), f"{f}:1"))
        if m.group(1).endswith("/env") and m.group(2):
            calls.append((m.group(2), f"{f}:1"))
    for node in ast.walk(ast.parse(src, f)):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        if isinstance(fn, ast.Attribute) and fn.attr == "which" and node.args:
            a = node.args[0]
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                calls.append((a.value, f"{f}:{node.lineno}"))
            continue
        for a in node.args:
            if isinstance(a, ast.List) and a.elts and isinstance(a.elts[0], ast.Constant) \
                    and isinstance(a.elts[0].value, str) and not a.elts[0].value.startswith("-"):
                calls.append((a.elts[0].value, f"{f}:{a.lineno}"))

for f in meson_files:
    src = open(f).read()
    for m in re.finditer(r"\bfind_program\(\s*'([^']+)'", src):
        calls.append((m.group(1), f"{f}:{src.count(chr(10), 0, m.start()) + 1}"))

for cmd, where in calls:
    if cmd and (cmd.startswith("/") or "/" not in cmd):
        out.write(f"{cmd}\t{where}\n")
PY

{ compgen -b; compgen -k; } >"$tmp/builtins"
lines() { [ $# = 0 ] || printf '%s\n' "$@"; }
/usr/bin/python3 -c "$scan_py" "$tmp/builtins" "$tmp/calls" "$(lines "${shell_files[@]}")" \
	"$(lines "${c_files[@]}")" "$(lines "${py_files[@]}")" "$(lines "${meson_files[@]}")"

if [ $calls_only = 1 ]; then
	sort -u "$tmp/calls"
	exit 0
fi

fail=0
declare -A listed=() called=()
for c in "${COMMANDS[@]}" "${OPTIONAL[@]}"; do listed[$c]=1; done
while IFS=$'\t' read -r cmd where; do
	[ -n "${called[$cmd]:-}" ] || called[$cmd]=$where
done <"$tmp/calls"
for cmd in $(printf '%s\n' "${!called[@]}" | sort); do
	if [ -z "${listed[$cmd]:-}" ]; then
		echo "check-deps: ${called[$cmd]}: '$cmd' is called but not listed in scripts/check-deps.sh" \
			"(add it to COMMANDS, and its package to scripts/deps.sh unless minbase has it)" >&2
		fail=1
	fi
done
for cmd in "${COMMANDS[@]}" "${OPTIONAL[@]}"; do
	if [ -z "${called[$cmd]:-}" ]; then
		echo "check-deps: '$cmd' is listed but no script calls it: remove it from scripts/check-deps.sh" >&2
		fail=1
	fi
done

# ---- 2. each command comes from a package deps.sh installs or minbase has ----
mapfile -t deps_packages < <(scripts/deps.sh --list)
# Package, Essential, Priority, status, Provides, Pre-Depends, Depends of what is installed
dpkg-query -W -f='${Package}\t${Essential}\t${Priority}\t${db:Status-Abbrev}\t${Provides}\t${Pre-Depends}, ${Depends}\n' \
	>"$tmp/status"
read -r -d '' closure_py <<'PY' || true
import sys
installed, provides, depends, base = set(), {}, {}, set()
for line in open(sys.argv[1]):
    name, essential, priority, status, prov, deps = line.rstrip("\n").split("\t")
    if not status.startswith("ii"):
        continue
    installed.add(name)
    if essential == "yes" or priority == "required":
        base.add(name)
    for p in prov.split(","):
        if p.strip():
            provides.setdefault(p.split()[0].split(":")[0], set()).add(name)
    depends[name] = [[a.split()[0].split(":")[0] for a in group.split("|") if a.strip()]
                     for group in deps.split(",") if group.strip()]
missing = [p for p in sys.argv[2:] if p not in installed]
if missing:
    sys.exit("check-deps: scripts/deps.sh would install " + " ".join(missing) + ": run it first")
# deps.sh's packages and everything they depend on, as installed here
seen, todo = set(), list(sys.argv[2:])
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    for group in depends.get(p, []):
        for alt in group:
            todo += [q for q in ({alt} & installed) | provides.get(alt, set()) if q not in seen]
for p in sorted(base):
    print("minbase", p)
for p in sorted(seen):
    print("deps.sh", p)
PY
declare -A origin=()
while read -r kind pkg; do
	[ -n "${origin[$pkg]:-}" ] || origin[$pkg]=$kind
done < <(/usr/bin/python3 -c "$closure_py" "$tmp/status" "${deps_packages[@]}")

# the files behind each command: the path found, each symlink on the way and
# the file it ends at, each under both names usrmerge gives it
declare -A chain=() resolved=()
for cmd in "${COMMANDS[@]}"; do
	if [[ $cmd == /* ]]; then
		path=$cmd
	else
		path=$(PATH=$debian_path; hash -r; command -v -- "$cmd") || path=
	fi
	if [[ $path != /* ]] || [ ! -x "$path" ]; then
		echo "check-deps: $cmd: not installed (called at ${called[$cmd]:-?}):" \
			"add its package to scripts/deps.sh" >&2
		fail=1
		continue
	fi
	resolved[$cmd]=$path
	links=("$path")
	p=$path
	for _ in 1 2 3 4 5 6 7 8; do
		[ -L "$p" ] || break
		t=$(readlink "$p")
		[[ $t == /* ]] || t=$(dirname "$p")/$t
		p=$t
		links+=("$p")
	done
	links+=("$(readlink -f "$path")")
	names=()
	for p in "${links[@]}"; do
		case $p in
		/usr/bin/* | /usr/sbin/* | /usr/lib/*) names+=("$p" "${p#/usr}") ;;
		/bin/* | /sbin/* | /lib/*) names+=("$p" "/usr$p") ;;
		*) names+=("$p") ;;
		esac
	done
	chain[$cmd]=$(printf '%s\n' "${names[@]}" | awk '!seen[$0]++')
done
# one dpkg -S for all of them: "pkg[:arch][, pkg...]: /path"
declare -A owner=()
while IFS= read -r line; do
	case $line in diversion* | *"no path found"*) continue ;; esac
	pkgs=${line%%: /*}
	file=/${line#*: /}
	owner[$file]=${pkgs//,/}
done < <(printf '%s\n' "${chain[@]}" | sort -u | xargs dpkg -S 2>/dev/null || true)

for cmd in "${COMMANDS[@]}"; do
	[ -n "${resolved[$cmd]:-}" ] || continue
	report=
	bad=
	while IFS= read -r p; do
		[ -n "${owner[$p]:-}" ] || continue
		ok=
		for pkg in ${owner[$p]}; do
			pkg=${pkg%%:*} # no :amd64
			[ -n "${origin[$pkg]:-}" ] && ok="$pkg (${origin[$pkg]})"
		done
		if [ -n "$ok" ]; then
			report=${report:-$p from $ok}
		else
			bad="$p is from ${owner[$p]}"
			bad_pkg=${owner[$p]%% *}
			bad_pkg=${bad_pkg%%:*}
		fi
	done <<<"${chain[$cmd]}"
	if [ -n "$bad" ]; then
		echo "check-deps: $cmd: $bad, which scripts/deps.sh does not install and minbase does not" \
			"have (called at ${called[$cmd]:-?}): add $bad_pkg to scripts/deps.sh" >&2
		fail=1
	elif [ -z "$report" ]; then
		echo "check-deps: $cmd: ${resolved[$cmd]} belongs to no Debian package (called at ${called[$cmd]:-?})" >&2
		fail=1
	elif [ $verbose = 1 ]; then
		printf '%-20s %s\n' "$cmd" "$report"
	fi
done

if [ $fail != 0 ]; then
	echo "check-deps: FAILED" >&2
	exit 1
fi
echo "check-deps: ${#COMMANDS[@]} commands called by the scripts, each from a package deps.sh installs or minbase has"
