/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: OpenSSH wire types and key encodings, for the frontends that speak
 * to OpenSSH (the ssh-agent, keymuxctl export-public --ssh) and the import
 * of OpenSSH private-key files */
#pragma once

#include <glib.h>

#include "kmx-algorithm.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

/**
 * KmxSshReader:
 *
 * A bounds-checked cursor over bytes in the SSH wire encoding (RFC 4251 §5).
 * Every read fails, and consumes nothing, when the bytes are short.
 */
typedef struct {
	const guint8 *p;
	gsize left;
} KmxSshReader;

void kmx_ssh_reader_init(KmxSshReader *r, const guint8 *data, gsize len);
gboolean kmx_ssh_read_byte(KmxSshReader *r, guint8 *v) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_read_u32(KmxSshReader *r, guint32 *v) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_read_bytes(KmxSshReader *r, gsize len, const guint8 **s) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_read_string(KmxSshReader *r,
			     const guint8 **s,
			     gsize *len) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_read_mpint(KmxSshReader *r,
			    const guint8 **s,
			    gsize *len) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_read_mpint_unsigned(KmxSshReader *r,
				     const guint8 **s,
				     gsize *len) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_string_is(const guint8 *s, gsize len, const char *want);

void kmx_ssh_put_byte(GByteArray *b, guint8 v);
void kmx_ssh_put_u32(GByteArray *b, guint32 v);
void kmx_ssh_put_string(GByteArray *b, const void *s, gsize len);
void kmx_ssh_put_cstring(GByteArray *b, const char *s);
void kmx_ssh_put_mpint(GByteArray *b, const guint8 *unsigned_be, gsize len);

const char *kmx_ssh_key_type_name(KmxKeyType type);
GBytes *kmx_ssh_public_key_from_spki(GBytes *spki,
				     KmxKeyType *type,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_ssh_public_key_to_spki(GBytes *blob,
				   KmxKeyType *type,
				   GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_ssh_verify_signature(GBytes *blob,
				  const guint8 *data,
				  gsize data_len,
				  const guint8 *signature,
				  gsize signature_len,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
char *kmx_ssh_authorized_key(GBytes *blob, const char *comment) G_GNUC_WARN_UNUSED_RESULT;
char *kmx_ssh_fingerprint(GBytes *blob) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_ssh_signature_new(KmxKeyType type,
			      KmxMechanism mechanism,
			      GBytes *signature,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_ssh_private_key_to_pem(KmxSshReader *r,
				      char **comment,
				      GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
