/*
 * The PKCS#11 module's objects: a keymux key seen as a private and a public
 * key object, and the secret key objects C_DeriveKey makes
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <p11-kit/pkcs11.h>

/* a keymux key as its Key properties describe it (reference counted:
 * g_atomic_rc_box_acquire / kmx_p11_key_unref) */
typedef struct {
	char *path;
	char *device;
	guint8 id[32];
	char *label;
	char *algorithm;
	CK_KEY_TYPE key_type;
	gboolean can_sign;
	gboolean can_decrypt;
	gboolean can_derive;
	GBytes *spki;
	GBytes *modulus;
	GBytes *exponent;
	GBytes *ec_params;
	GBytes *ec_point;
	CK_ULONG bits;
	/* bytes of a signature: modulus length, 2 × field length, or 64 */
	gsize sig_len;
} KmxP11Key;

KmxP11Key *kmx_p11_key_new(const char *path, GVariant *props, GError **error);
void kmx_p11_key_unref(KmxP11Key *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxP11Key, kmx_p11_key_unref)

typedef struct {
	CK_OBJECT_HANDLE handle;
	CK_OBJECT_CLASS klass;
	CK_SLOT_ID slot;
	/* CKO_PRIVATE_KEY, CKO_PUBLIC_KEY */
	KmxP11Key *key;
	gboolean needs_login;
	gboolean seen; /* listed by the last refresh */
	/* CKO_SECRET_KEY: a session object */
	CK_SESSION_HANDLE session;
	guint8 *value;
	gsize value_len;
	CK_KEY_TYPE secret_type;
	GBytes *label;
	GBytes *id;
	gboolean sensitive;
	gboolean extractable;
} KmxP11Object;

void kmx_p11_object_free(KmxP11Object *obj);

/*
 * kmx_p11_object_attribute: the value of attribute @type of @obj in @value;
 * CKR_ATTRIBUTE_SENSITIVE or CKR_ATTRIBUTE_TYPE_INVALID when it has none
 * to give.
 */
CK_RV kmx_p11_object_attribute(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type, GBytes **value);

/* PKCS#11 text fields: blank padded, not terminated, cut at a character */
void kmx_p11_pad(CK_UTF8CHAR *field, gsize size, const char *text);
