/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: base64 and PEM, decoded strictly by gnutls, secrets kept secret */
#pragma once

#include <glib.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

GBytes *kmx_base64_decode(const char *text, gsize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_base64_decode_secret(const char *text,
				    gsize len,
				    GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_base64_encode_secret(const guint8 *data, gsize len) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_pem_decode_secret(const char *text, gsize len, const char *label, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
