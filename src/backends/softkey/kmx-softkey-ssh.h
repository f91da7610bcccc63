/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: passphrase-protected OpenSSH keys, decrypted by libssh */
#pragma once

#include <glib.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

KmxSecret *kmx_softkey_ssh_decrypt(KmxSecret *text,
				   KmxSecret *passphrase,
				   const guint8 *public_blob,
				   gsize public_len,
				   GError **error);

G_END_DECLS
