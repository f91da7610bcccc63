#!/bin/bash
# OpenPGP cards: a real pcscd with the vpcd driver and the project's card
# simulator (tests/openpgp-card-sim.py); gpg reads the same simulator, which
# keeps it honest.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup

# until_ok CMD...: until CMD succeeds (events, not a fixed sleep)
until_ok() {
	for _ in $(seq 400); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.025
	done
	fail "timed out waiting for: $*"
}

kmx_start_pcscd
kmx_start_card_sim --serial 0000BEEF --keys sig=ecdsa-p256,dec=x25519,aut=ed25519 --name 'Doe<<Jane'
until_ok grep -q '^inserted' "$KMX_TMP/card.log"

# ---- gpg's scdaemon reads the simulator: the card is what it says it is ----
export GNUPGHOME=$KMX_TMP/gnupg
mkdir -m 0700 "$GNUPGHOME"
printf 'pcsc-shared\ndisable-ccid\n' >"$GNUPGHOME/scdaemon.conf"
gpg_status() { gpg --batch --card-status 2>&1; }
until_ok gpg_status
status=$(gpg_status)
gpgconf --kill all
assert_contains "$status" "Application ID ...: D276000124010304FFFE0000BEEF0000"
assert_contains "$status" "Name of cardholder: Jane Doe"
assert_contains "$status" "Key attributes ...: nistp256 cv25519 ed25519"
assert_contains "$status" "PIN retry counter : 3 0 3"
