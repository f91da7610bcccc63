#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's tour runs as written: its keymuxctl and busctl blocks are
# taken from README.md and run, one line after the other with set -e,
# against a keymuxd of the test's own on a new store.  Where the tour asks
# (passwd, unlock), the answers come on stdin; its monitor is stopped with
# Ctrl-C (SIGINT to the tour's process group) once it listens.
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_BUILD_ROOT:?}"
kmx_setup
cd "$KMX_TMP"

# the ```sh blocks of "## A tour", up to its first subsection
/usr/bin/python3 - "$KMX_TESTS_DIR/../README.md" >tour.sh <<-'PY'
import re, sys
text = open(sys.argv[1]).read()
tour = re.search(r"^## A tour\n(.*?)^##", text, re.S | re.M)
assert tour, "README.md has no '## A tour' section"
blocks = re.findall(r"^```sh\n(.*?)^```", tour.group(1), re.S | re.M)
assert len(blocks) == 2, "the tour has %d sh blocks, expected 2" % len(blocks)
print("set -euo pipefail")
print("".join(blocks))
PY
grep -q 'keymuxctl monitor' tour.sh || fail "the tour has no monitor line: $(cat tour.sh)"

# the tour runs from the top of a source tree: one whose build/ is this build
mkdir tree
ln -s "$KMX_BUILD_ROOT" tree/build
cp tour.sh tree/
kmx_start_daemon
printf '\ntour-pw\ntour-pw\n' >answers
(cd tree && TMPDIR=$KMX_TMP exec setsid bash tour.sh) <answers >tour.out 2>tour.err &
tour=$!
KMX_PIDS+=("$tour")
for _ in $(seq 400); do
	grep -q 'keymuxctl: monitoring' tour.err && break
	kill -0 "$tour" 2>/dev/null || break
	sleep 0.05
done
grep -q 'keymuxctl: monitoring' tour.err || fail "the tour stopped before its monitor: $(cat tour.err)"
kill -INT -- -"$tour"
status=0
wait "$tour" || status=$?
[ "$status" = 0 ] || fail "the tour failed ($status): $(tail -n 5 tour.err)"

out=$(cat tour.out)
assert_contains "$out" "softkey:login"
assert_contains "$out" "Signature Verified Successfully"
grep -qE '^ay [0-9]+( [0-9]+)+$' <<<"$out" || fail "busctl's Sign returned no signature: $out"
assert_contains "$out" "/org/keymux/Keystore1/devices/softkey_3alogin"
# what the tour did: a protected store with two keys, one called work
assert_contains "$(kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Details)" \
	'"protected" b true'
assert_eq "b false" "$(kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Locked)"
assert_contains "$(kmx_manager ListKeys)" "ao 2 " "the tour made two keys"
kmx_log "test-readme: the tour ran as written"
