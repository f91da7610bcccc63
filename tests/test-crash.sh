#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGKILL keymuxd at random moments of ChangeSecret, GenerateKey, ImportKey
# and Delete, many times: afterwards every key must be usable under exactly
# one of the old and the new password, and whatever the daemon acknowledged
# before it died must have survived.
. "$KMX_TESTS_DIR/harness.sh"
# a call that reaches the bus after the kill must fail: activation would
# start a keymuxd that the next kmx_start_daemon finds owning the name
KMX_NO_ACTIVATION=1
kmx_setup
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
ROUNDS=${KMX_CRASH_ROUNDS:-24}

kmx_start_daemon
kmx_device softkey:login ChangeSecret ss "" "pw-0"
declare -A BASE
for n in 1 2 3; do
	p=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 "base $n" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
	BASE[$n]=$p
done
password="pw-0"
declare -A MUST_EXIST=() MUST_NOT_EXIST=()
extra=()

unlock_with() {
	busctl --user --timeout=60 call org.keymux.Keystore1 "$(kmx_device_path softkey:login)" \
		org.keymux.Keystore1.Device Unlock sa{sv} "$1" 0 >/dev/null 2>&1
}

for round in $(seq "$ROUNDS"); do
	op=$(( round % 4 ))
	new="pw-$round"
	ack=0
	case $op in
	0) # change the password
		( kmx_device softkey:login ChangeSecret ss "$password" "$new" >/dev/null 2>&1 && echo ok >ack ) &
		;;
	1) # generate
		( kmx_device softkey:login GenerateKey ssa{sv} ecdsa-p256 "gen $round" 0 >gen.out 2>/dev/null && echo ok >ack ) &
		;;
	2) # import
		openssl genpkey -algorithm ED25519 -out "imp$round.pem" 2>/dev/null
		openssl pkey -in "imp$round.pem" -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >"imp$round.id"
		# shellcheck disable=SC2046
		( kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay "imp$round.pem") "" "imp $round" 0 >/dev/null 2>&1 && echo ok >ack ) &
		;;
	3) # delete one of the extra keys, if any
		victim=
		if [ ${#extra[@]} -gt 0 ]; then
			victim=${extra[0]}
			extra=("${extra[@]:1}")
			( kmx_key "$victim" Delete >/dev/null 2>&1 && echo ok >ack ) &
		else
			( true ) &
		fi
		;;
	esac
	client=$!
	# a random moment in the first 0.9 s (a password change costs two KDFs)
	sleep "0.$(printf '%03d' $(( RANDOM % 900 )))"
	kmx_kill_daemon
	wait "$client" 2>/dev/null || true
	[ -f ack ] && ack=1
	rm -f ack
	kmx_log "round $round: operation $op $([ $ack = 1 ] && echo acknowledged || echo interrupted)"

	case $op in
	0) [ $ack = 1 ] && password=$new ;;
	1) if [ $ack = 1 ]; then
		p=$(sed -n 's/^o "\(.*\)"$/\1/p' gen.out); MUST_EXIST[$p]=1; extra+=("$p")
	   fi ;;
	2) p="$(kmx_device_path softkey:login)/$(cat "imp$round.id")"
	   [ $ack = 1 ] && { MUST_EXIST[$p]=1; extra+=("$p"); } ;;
	# an interrupted delete may or may not have happened: both are right
	3) if [ -n "${victim:-}" ]; then
		unset "MUST_EXIST[$victim]"
		[ $ack = 1 ] && MUST_NOT_EXIST[$victim]=1
	   fi ;;
	esac

	kmx_start_daemon
	# a new key's .info is written before its .pem: no crash leaves a key
	# file without .info, which a protected store could only keep unlisted
	for pem in "$KEYMUX_DATA_DIR"/softkey/login/*.pem; do
		[ -f "${pem%.pem}.info" ] || fail "round $round: $(basename "$pem") has no .info"
	done
	assert_contains "$(kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Details)" \
		'"incomplete-keys" u 0' "round $round"
	# exactly one password opens the store: the acknowledged one, or (for an
	# unacknowledged change) maybe the new one
	ok_old=0; ok_new=0
	unlock_with "$password" && ok_old=1
	kmx_device softkey:login Lock >/dev/null
	if [ $op = 0 ] && [ "$new" != "$password" ]; then
		unlock_with "$new" && ok_new=1
		kmx_device softkey:login Lock >/dev/null
	fi
	if [ $ok_old = 1 ] && [ $ok_new = 1 ]; then fail "round $round: both passwords open the store"; fi
	if [ $ok_old = 0 ] && [ $ok_new = 0 ]; then fail "round $round: no password opens the store"; fi
	[ $ok_new = 1 ] && password=$new
	unlock_with "$password" || fail "round $round: cannot unlock"

	listed=$(kmx_manager ListKeys)
	for n in 1 2 3; do
		assert_contains "$listed" "${BASE[$n]}" "round $round: base key $n lost"
		kmx_key "${BASE[$n]}" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null ||
			fail "round $round: base key $n unusable"
	done
	for p in "${!MUST_EXIST[@]}"; do
		assert_contains "$listed" "$p" "round $round: an acknowledged key was lost"
	done
	for p in "${!MUST_NOT_EXIST[@]}"; do
		assert_not_contains "$listed" "$p" "round $round: an acknowledged delete came back"
	done
	# every key that is listed is usable: nothing half-written is offered
	for p in $(tr -d '"' <<<"$listed" | cut -d' ' -f3-); do
		alg=$(kmx_prop "$p" org.keymux.Keystore1.Key Algorithm | tr -d '"' | cut -d' ' -f2)
		case $alg in
		ed25519) a=ed25519 ;;
		ecdsa-p256) a=ecdsa-sha256 ;;
		*) fail "unexpected key type $alg" ;;
		esac
		kmx_key "$p" Sign saya{sv} $a 3 1 2 3 0 >/dev/null || fail "round $round: listed key $p is unusable"
	done
	kmx_device softkey:login Lock >/dev/null
done
# no temp files are offered as keys, and the daemon says nothing about losing any
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "CRITICAL"
echo "PASS: test-crash ($ROUNDS rounds)"
