#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Slow imports (a KDF with millions of iterations, within the cap) run on
# the storage executor: a signature and a Lock asked for while two of them
# run are answered before either import is.  (The order is checked, not
# the time: a slow machine cannot fail this.)
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
cd "$KMX_TMP"
kmx_start_daemon

key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 k 0 | sed -n 's/^o "\(.*\)"$/\1/p')
for n in 1 2; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "k$n.pem" 2>/dev/null
	openssl pkcs12 -export -nocerts -inkey "k$n.pem" -passout pass:pw -iter 5000000 \
		-out "slow$n.p12" 2>/dev/null
done
: >order.log
for n in 1 2; do
	(
		# shellcheck disable=SC2046
		kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay "slow$n.p12") pw "" 0 \
			>"import$n.out" 2>&1 || true
		echo "import$n" >>order.log
	) &
	KMX_PIDS+=($!)
done
# both imports are queued (their audit lines come when they end): give the
# workers a moment to start them; an early signature would only make the
# check weaker, never fail it
sleep 0.3
kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null
echo sign >>order.log
kmx_device softkey:login Lock >/dev/null
echo lock >>order.log
for _ in $(seq 1200); do [ "$(grep -c . order.log)" -ge 4 ] && break; sleep 0.05; done
kmx_log "order: $(tr '\n' ' ' <order.log)"
assert_eq "sign" "$(sed -n 1p order.log)" "a signature waited behind slow imports"
assert_eq "lock" "$(sed -n 2p order.log)" "Lock waited behind slow imports"
assert_contains "$(cat import1.out import2.out)" "ao 1"
echo "PASS: test-starve"
