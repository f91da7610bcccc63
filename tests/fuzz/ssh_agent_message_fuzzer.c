/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for what an ssh client sends the agent: every agent
 * message (kmx-ssh-agent-message.c), and the OpenSSH encodings in them
 * (kmx-ssh.c): public key blobs to and from SubjectPublicKeyInfo, signature
 * blobs, private keys
 *
 * One input: one agent message as it follows its length prefix (its type
 * byte, its fields).  Accepted when it parses.  See kmx-fuzz-main.h.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-fuzz-main.h"
#include "kmx-ssh-agent-message.h"
#include "kmx-ssh.h"

/* a public key blob: to SPKI and back to the same bytes, its fingerprint,
 * its authorized_keys line */
static void
kmx_fuzz_blob(const guint8 *p, gsize len)
{
	g_autoptr(GBytes) blob = g_bytes_new(p, len);
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GBytes) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *fp = kmx_ssh_fingerprint(blob);
	g_autofree char *line = kmx_ssh_authorized_key(blob, "fuzz\ncomment");
	KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;
	KmxKeyType type2 = KMX_KEY_TYPE_UNKNOWN;

	g_assert_true(g_str_has_prefix(fp, "SHA256:"));
	if (line != NULL)
		g_assert_null(strchr(line, '\n'));
	spki = kmx_ssh_public_key_to_spki(blob, &type, &error);
	if (spki == NULL) {
		g_assert_true(error->domain == KMX_ERROR);
		return;
	}
	back = kmx_ssh_public_key_from_spki(spki, &type2, NULL);
	/* what keymux can use comes back byte for byte */
	if (back != NULL) {
		g_assert_true(g_bytes_equal(blob, back));
		g_assert_cmpint(type, ==, type2);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_auto(KmxSshAgentMessage) msg;
	g_autoptr(GError) error = NULL;

	if (!kmx_ssh_agent_message_parse(&msg, data, size, &error)) {
		g_assert_true(g_error_matches(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT));
		kmx_fuzz_report(error);
		return 0;
	}
	/* every field lies within the message */
#define KMX_FUZZ_INSIDE(f, n)                                                                      \
	g_assert_true((f) == NULL || ((f) >= data && (f) + (n) <= data + size))
	KMX_FUZZ_INSIDE(msg.key_blob, msg.key_blob_len);
	KMX_FUZZ_INSIDE(msg.data, msg.data_len);
	KMX_FUZZ_INSIDE(msg.passphrase, msg.passphrase_len);
	KMX_FUZZ_INSIDE(msg.host_key, msg.host_key_len);
	KMX_FUZZ_INSIDE(msg.session_id, msg.session_id_len);
	KMX_FUZZ_INSIDE(msg.signature, msg.signature_len);
	g_assert_cmpint(msg.type, ==, data[0]);
	if (msg.key_blob != NULL)
		kmx_fuzz_blob(msg.key_blob, msg.key_blob_len);
	if (msg.pem != NULL)
		g_assert_true(msg.comment == NULL || g_utf8_validate(msg.comment, -1, NULL));
	if (msg.session_bind) {
		g_autoptr(GBytes) host = g_bytes_new(msg.host_key, msg.host_key_len);
		g_autoptr(GError) verify_error = NULL;

		kmx_fuzz_blob(msg.host_key, msg.host_key_len);
		if (!kmx_ssh_verify_signature(host,
					      msg.session_id,
					      msg.session_id_len,
					      msg.signature,
					      msg.signature_len,
					      &verify_error))
			g_assert_true(verify_error->domain == KMX_ERROR);
	}
	kmx_fuzz_report(NULL);
	return 0;
}
