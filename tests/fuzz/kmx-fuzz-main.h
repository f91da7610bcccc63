/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: what every fuzz target shares
 *
 * A target defines LLVMFuzzerTestOneInput().  In a libFuzzer build
 * (meson -Dfuzzing=true, clang) libFuzzer supplies main(); otherwise the
 * main() here feeds it one input read from stdin, for corpora, crash
 * reproduction and AFL's stdin mode, e.g.
 *   build/src/backends/softkey/softkey_import_fuzzer < key.pem
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef KMX_LIBFUZZER
#define kmx_fuzz_report(error)
#else
/* what became of the input: "accepted", or why not (stdout) */
static inline void
kmx_fuzz_report(const GError *error)
{
	g_print("%s\n", error != NULL ? error->message : "accepted");
}

int
main(int argc, char **argv)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	guint8 chunk[4096];
	ssize_t n;

	/* no target takes more than 2 MiB: the rest is not read */
	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0) {
		if (buf->len > 2 * 1024 * 1024)
			break;
		g_byte_array_append(buf, chunk, (guint)n);
	}
	return LLVMFuzzerTestOneInput(buf->data, buf->len);
}
#endif
