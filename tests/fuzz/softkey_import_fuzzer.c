/* keymux: fuzz target for the soft-key import parser
 *
 * Reads one input from stdin: the first byte's low bit chooses an empty or
 * a fixed passphrase, the rest is the key file.  Works as a plain program
 * (for corpora and crash reproduction) and under AFL's stdin mode.
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "kmx-softkey-import.h"

int
main(int argc, char **argv)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	g_autoptr(GBytes) data = NULL;
	g_autoptr(KmxSecret) pass = NULL;
	g_autoptr(GPtrArray) keys = NULL;
	g_autoptr(GError) error = NULL;
	guint8 chunk[4096];
	ssize_t n;

	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0) {
		if (buf->len > 2 * KMX_SOFTKEY_IMPORT_MAX_SIZE)
			break;
		g_byte_array_append(buf, chunk, (guint)n);
	}
	if (buf->len == 0)
		return 0;
	pass = kmx_secret_new_from_string((buf->data[0] & 1) ? "fuzz" : "");
	data = g_bytes_new(buf->data + 1, buf->len - 1);
	keys = kmx_softkey_import_parse(data, pass, &error);
	if (keys == NULL)
		g_assert_nonnull(error);
	else
		g_assert_cmpuint(keys->len, >, 0);
	return 0;
}
