/* keymux-settings: a key's public half as PEM and as an authorized_keys line
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <gnutls/gnutls.h>

#include "kmx-panel.h"
#include "kmx-ssh.h"

/* the SubjectPublicKeyInfo in PEM "PUBLIC KEY" armor; NULL if the key has none */
char *
kmx_panel_public_key_pem(KeymuxKey *key, GError **error)
{
	g_autoptr(GBytes) spki = keymux_key_dup_public_key(key);
	gnutls_datum_t in, out = {NULL, 0};
	char *pem;
	int rc;

	if (spki == NULL || g_bytes_get_size(spki) == 0 || g_bytes_get_size(spki) > G_MAXUINT32) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_SUPPORTED,
			    "The key has no public key");
		return NULL;
	}
	in.data = (unsigned char *)g_bytes_get_data(spki, NULL);
	in.size = (unsigned int)g_bytes_get_size(spki);
	rc = gnutls_pem_base64_encode2("PUBLIC KEY", &in, &out);
	if (rc < 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_FAILED,
			    "Cannot encode the public key: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	pem = g_strndup((const char *)out.data, out.size);
	gnutls_free(out.data);
	return pem;
}

/* "ssh-ed25519 AAAA... label", as keymuxctl export-public --ssh writes it */
char *
kmx_panel_public_key_ssh(KeymuxKey *key, GError **error)
{
	g_autoptr(GBytes) spki = keymux_key_dup_public_key(key);
	g_autoptr(GBytes) blob = NULL;
	g_autofree char *label = keymux_key_dup_label(key);

	if (spki == NULL || g_bytes_get_size(spki) == 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_SUPPORTED,
			    "The key has no public key");
		return NULL;
	}
	blob = kmx_ssh_public_key_from_spki(spki, NULL, error);
	if (blob == NULL)
		return NULL;
	return kmx_ssh_authorized_key(blob, label);
}
