#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the Debian packages keymux needs to build, run, test and
# benchmark, if any is missing.  Used by run.sh and test.sh.  Every program
# the scripts call comes from one of these or from a minimal Debian
# (debootstrap --variant=minbase): scripts/check-deps.sh checks it.
# --list prints the packages.
set -euo pipefail

packages=(
	build-essential pkg-config meson ninja-build
	dbus dbus-daemon dbus-bin libglib2.0-dev libglib2.0-dev-bin libglib2.0-bin systemd
	libgnutls28-dev gnutls-bin libssl-dev libssh-dev openssl libp11-kit-dev p11-kit softhsm2
	libtss2-dev libtss2-tcti-swtpm0 libtss2-tcti-pcap0 swtpm swtpm-tools tpm2-tools tpm2-openssl libtasn1-6-dev libtasn1-bin
	pcscd libpcsclite-dev pcsc-tools opensc vsmartcard-vpcd scdaemon
	openssh-client openssh-server gnupg gpg-agent python3 python3-cryptography xxd eatmydata shfmt
	gobject-introspection libgirepository1.0-dev python3-gi gjs
	libgcr-3-dev libsecret-1-dev gnome-keyring libsecret-tools
	go-md2man man-db bash-completion
	libnss3-tools
	libgtk-4-dev libadwaita-1-dev xvfb at-spi2-core python3-pyatspi imagemagick
	xclip
	libdbus-1-dev
)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${packages[@]}"
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "keymux: installing ${missing[*]}" >&2
sudo=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "keymux: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
	-o DPkg::Lock::Timeout=300 "${missing[@]}"
