/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: public-key encodings every backend needs, done by gnutls */
#pragma once

#include <glib.h>

#include "kmx-algorithm.h"

G_BEGIN_DECLS

/* the largest peer SubjectPublicKeyInfo kmx_spki_parse_peer() reads: an EC
 * one on P-384 is 120 bytes */
#define KMX_SPKI_PEER_MAX_SIZE 4096

GBytes *kmx_spki_new_from_rsa(GBytes *modulus,
			      GBytes *exponent,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_spki_new_from_ec_point(KmxKeyType type,
				   GBytes *point,
				   GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_spki_new_from_raw(KmxKeyType type,
			      GBytes *key,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_spki_parse_peer(KmxKeyType type, GBytes *peer, GBytes **raw, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

GBytes *kmx_digest_info_new(KmxHash hash, GBytes *digest, GError **error) G_GNUC_WARN_UNUSED_RESULT;

GBytes *kmx_ecdsa_signature_to_der(KmxKeyType type,
				   GBytes *rs,
				   GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_ecdsa_digest_fit(KmxKeyType type,
			     GBytes *digest,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_ecdsa_signature_from_der(KmxKeyType type,
				     GBytes *der,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
