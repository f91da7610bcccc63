/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: base64 and PEM, decoded strictly by gnutls, secrets kept secret
 *
 * Key files, OpenSSH keys and PEM public keys all carry base64.  gnutls
 * decodes it strictly (only the alphabet, '=' padding to a multiple of four
 * characters, no stray bits); what is decoded into secret memory is copied
 * there and gnutls's buffer wiped before it is freed.
 */
#include "config.h"

#include <string.h>

#include <gnutls/gnutls.h>

#include "kmx-encoding.h"
#include "kmx-error.h"

/* gnutls skips white space in base64 but also stops at a '-', where a PEM
 * footer would start: refuse a '-' rather than ignore what follows it */
static gboolean
kmx_base64_decode_datum(const char *text, gsize len, gnutls_datum_t *out, GError **error)
{
	gnutls_datum_t in = {(unsigned char *)text, (unsigned int)len};
	int rc;

	if (len > G_MAXINT) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the base64 text is too long");
		return FALSE;
	}
	if (len > 0 && memchr(text, '-', len) != NULL) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "unexpected '-' in the base64 text");
		return FALSE;
	}
	rc = len > 0 ? gnutls_base64_decode2(&in, out) : 0;
	if (rc < 0) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "not valid base64: only A-Z, a-z, 0-9, '+' and '/', with '=' "
				    "padding to a multiple of four characters");
		return FALSE;
	}
	if (out->size == 0) {
		gnutls_free(out->data);
		out->data = NULL;
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "no base64 text");
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_base64_decode:
 * @text: base64, white space allowed between the characters
 * @len: the length of @text
 * @error: return location for a #GError
 *
 * Decodes public data: a key file's public key, a salt.
 *
 * Returns: (transfer full): the bytes, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT when @text is not strict base64 or decodes
 * to nothing
 */
GBytes *
kmx_base64_decode(const char *text, gsize len, GError **error)
{
	gnutls_datum_t out = {NULL, 0};
	GBytes *bytes;

	g_return_val_if_fail(text != NULL || len == 0, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	if (!kmx_base64_decode_datum(text, len, &out, error))
		return NULL;
	bytes = g_bytes_new(out.data, out.size);
	gnutls_free(out.data);
	return bytes;
}

/**
 * kmx_base64_decode_secret:
 * @text: base64, white space allowed between the characters
 * @len: the length of @text
 * @error: return location for a #GError
 *
 * Decodes key material; gnutls's copy is wiped.
 *
 * Returns: (transfer full): the bytes, in secret memory, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT when @text is not strict base64 or decodes
 * to nothing
 */
KmxSecret *
kmx_base64_decode_secret(const char *text, gsize len, GError **error)
{
	gnutls_datum_t out = {NULL, 0};

	g_return_val_if_fail(text != NULL || len == 0, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	if (!kmx_base64_decode_datum(text, len, &out, error))
		return NULL;
	return kmx_secret_new_take(out.data, out.size, gnutls_free);
}

/**
 * kmx_base64_encode_secret:
 * @data: key material
 * @len: the length of @data
 *
 * Encodes key material straight into secret memory.
 *
 * Returns: (transfer full): @data as base64 on one line
 */
KmxSecret *
kmx_base64_encode_secret(const guint8 *data, gsize len)
{
	g_autoptr(KmxSecret) b64 = NULL;
	gint state = 0;
	gint save = 0;
	char *out;
	gsize n;

	g_return_val_if_fail(data != NULL || len == 0, NULL);
	g_return_val_if_fail(len < G_MAXSIZE / 2, NULL);

	/* what g_base64_encode_step() may write without line breaks */
	b64 = kmx_secret_new((len / 3 + 1) * 4 + 4);
	out = (char *)kmx_secret_get_data(b64);
	n = g_base64_encode_step(data, len, FALSE, out, &state, &save);
	n += g_base64_encode_close(FALSE, out + n, &state, &save);
	kmx_secret_truncate(b64, n);
	return g_steal_pointer(&b64);
}

/**
 * kmx_pem_decode_secret:
 * @text: text holding a PEM block (RFC 7468), e.g. a key file
 * @len: the length of @text
 * @label: the label of the block, e.g. "PUBLIC KEY"
 * @error: return location for a #GError
 *
 * Decodes the first PEM block labelled @label; text around it is ignored.
 *
 * Returns: (transfer full): the bytes inside the armor, in secret memory,
 * or %NULL with %KMX_ERROR_INVALID_ARGUMENT
 */
KmxSecret *
kmx_pem_decode_secret(const char *text, gsize len, const char *label, GError **error)
{
	g_autofree char *begin = NULL;
	g_autofree char *end = NULL;
	g_autoptr(GError) error_local = NULL;
	const char *body;
	const char *stop;
	KmxSecret *secret;

	g_return_val_if_fail(text != NULL || len == 0, NULL);
	g_return_val_if_fail(label != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	begin = g_strdup_printf("-----BEGIN %s-----", label);
	end = g_strdup_printf("-----END %s-----", label);
	body = len > 0 ? memmem(text, len, begin, strlen(begin)) : NULL;
	if (body == NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "not a PEM '%s': no '%s' line",
			    label,
			    begin);
		return NULL;
	}
	body += strlen(begin);
	stop = memmem(body, len - (gsize)(body - text), end, strlen(end));
	if (stop == NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "truncated PEM: no '%s' line",
			    end);
		return NULL;
	}
	secret = kmx_base64_decode_secret(body, (gsize)(stop - body), &error_local);
	if (secret == NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "bad PEM '%s': %s",
			    label,
			    error_local->message);
		return NULL;
	}
	return secret;
}
