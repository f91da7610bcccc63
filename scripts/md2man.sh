#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Turns a manual page of docs/ (Markdown, as shown on the web) into roff
# with go-md2man: the page's own title line ("% ...", or a YAML block between
# "---" lines) is replaced by the one go-md2man copies to .TH.
# usage: md2man.sh GO-MD2MAN IN.md OUT NAME SECTION VERSION MANUAL
set -eu
[ $# -eq 7 ] || { echo "usage: $0 GO-MD2MAN IN.md OUT NAME SECTION VERSION MANUAL" >&2; exit 2; }
md2man=$1 in=$2 out=$3 name=$4 section=$5 version=$6 manual=$7
{
	printf '%% %s %s "" "keymux %s" "%s"\n\n' "$name" "$section" "$version" "$manual"
	awk 'NR == 1 && /^%/ { next }
	     NR == 1 && /^---$/ { front = 1; next }
	     front && /^---$/ { front = 0; next }
	     !front { print }' "$in"
} | "$md2man" -out "$out"
