/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft key, as an OpenPGP card's key import template */
#pragma once

#include <gnutls/abstract.h>

#include "kmx-algorithm.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

gnutls_privkey_t kmx_card_import_parse(GBytes *data,
				       KmxSecret *passphrase,
				       KmxKeyType *type,
				       GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_card_import_template(gnutls_privkey_t key,
				    KmxKeyType type,
				    guint8 crt_tag,
				    GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
